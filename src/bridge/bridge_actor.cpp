#include "bridge/bridge_actor.hpp"

#include <mutex>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "bridge/ws_server.hpp"
#include "node/node_context.hpp"
#include "peers/peer_view.hpp"
#include "sessions/session_actor.hpp"
#include "util/ask_all.hpp"
#include "util/log.hpp"

namespace mpreg {

namespace {

// Connection id -> session. The I/O thread uses it while the server runs;
// the bridge empties it after the server stopped, and a stop that timed out
// (a stalled loop) may leave the loop running: hence the (uncontended) lock.
struct session_map {
  std::mutex m;
  std::unordered_map<std::uint64_t, session_actor> by_id;
};

struct bridge_state {
  static inline const char* name = "mpreg.bridge";
  std::shared_ptr<node_context> ctx;
  std::shared_ptr<session_map> sessions = std::make_shared<session_map>();
  std::unique_ptr<bridge::ws_server> server;
};

using bridge_pointer = bridge_actor::stateful_pointer<bridge_state>;

std::pair<int, std::string> http_page(node_context& ctx, const std::string& path) {
  if (path == "/health")
    return {200, "ok\n"};
  if (path == "/status")
    return {200, cluster_status(ctx).dump() + "\n"};
  return {404, "not found: try /health or /status\n"};
}

bridge::server_events make_events(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                                  std::shared_ptr<session_map> sessions) {
  bridge::server_events ev;
  ev.on_open = [&sys, ctx, sessions](std::uint64_t id, std::shared_ptr<bridge::outbound> out) {
    MPREG_LOG(debug, "client connected: " << out->remote());
    auto session = spawn_session(sys, ctx, std::move(out));
    std::lock_guard<std::mutex> lock(sessions->m);
    sessions->by_id[id] = std::move(session);
  };
  ev.on_frames = [sessions](std::uint64_t id, std::vector<std::string>&& frames) {
    std::unique_lock<std::mutex> lock(sessions->m);
    auto i = sessions->by_id.find(id);
    if (i == sessions->by_id.end())
      return;
    auto session = i->second;
    lock.unlock();
    caf::anon_send(session, frame_atom::value, frame_batch{std::move(frames)});
  };
  ev.on_close = [sessions](std::uint64_t id) {
    std::unique_lock<std::mutex> lock(sessions->m);
    auto i = sessions->by_id.find(id);
    if (i == sessions->by_id.end())
      return;
    auto session = std::move(i->second);
    sessions->by_id.erase(i);
    lock.unlock();
    caf::anon_send(session, closed_atom::value);
  };
  ev.on_http = [ctx](const std::string& path) { return http_page(*ctx, path); };
  return ev;
}

void shutdown_server(bridge_pointer self) {
  auto& st = self->state;
  if (!st.server)
    return;
  st.server->stop();
  st.server.reset();
  // Connections the I/O loop could not close in time still have sessions.
  std::unordered_map<std::uint64_t, session_actor> rest;
  {
    std::lock_guard<std::mutex> lock(st.sessions->m);
    rest.swap(st.sessions->by_id);
  }
  for (auto& [id, session] : rest)
    caf::anon_send(session, closed_atom::value);
}

bridge_actor::behavior_type bridge_behavior(bridge_pointer self, std::shared_ptr<node_context> ctx) {
  self->state.ctx = std::move(ctx);
  return {
    [self](listen_atom) -> std::tuple<std::uint16_t, std::string> {
      auto& st = self->state;
      if (st.server)
        return {0, "already listening"};
      try {
        st.server = std::make_unique<bridge::ws_server>(
          st.ctx->io, make_events(self->system(), st.ctx, st.sessions),
          st.ctx->config.max_message_size);
        auto port = st.server->listen(st.ctx->config.host,
                                      static_cast<std::uint16_t>(st.ctx->config.port));
        return {port, std::string{}};
      } catch (const std::exception& e) {
        st.server.reset();
        return {0, e.what()};
      }
    },
    [self](stop_atom) -> caf::result<bool> {
      // Requests still running answer first ("node is stopping"), so that
      // every request gets its one answer; then the connections close.
      // Sessions that register after the snapshot see the flag.
      self->state.ctx->stopping.store(true);
      if (!self->state.server)
        return true;
      std::vector<session_actor> sessions;
      for (auto& s : self->state.ctx->sessions.snapshot())
        sessions.push_back(caf::actor_cast<session_actor>(std::move(s)));
      auto promise = self->make_response_promise<bool>();
      util::ask_all(self, sessions, std::chrono::seconds(1), stop_requests_atom::value,
                    [self, promise]() mutable {
                      shutdown_server(self);
                      promise.deliver(true);
                    });
      return promise;
    },
  };
}

} // namespace

bridge_actor spawn_bridge(caf::actor_system& sys, std::shared_ptr<node_context> ctx) {
  return sys.spawn(bridge_behavior, std::move(ctx));
}

} // namespace mpreg
