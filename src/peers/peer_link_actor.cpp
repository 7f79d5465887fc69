#include "peers/peer_link_actor.hpp"

#include <chrono>
#include <unordered_map>

#include <caf/all.hpp>

#include "node/node_context.hpp"
#include "peers/cluster_messages.hpp"
#include "sessions/session_actor.hpp"
#include "transport/ws_client.hpp"
#include "util/log.hpp"

namespace mpreg {

namespace {

struct link_state {
  static inline const char* name = "mpreg.peer_link";
  std::shared_ptr<node_context> ctx;
  std::string url;
  caf::actor supervisor;
  transport::ws_connection_ptr conn;
  std::string hello_u;
  bool ready = false;
  std::unordered_map<std::string, caf::response_promise> pending; // u -> waiting job
  // Liveness while calls are outstanding: a peer that is frozen (not dead)
  // keeps its socket open, so silence is what tells. Every gossip interval
  // the link sends STATUS (any MPREG node answers it); a peer unheard for the
  // dead-peer timeout is given up on and its calls fail over.
  std::chrono::steady_clock::time_point last_heard;
  bool probing = false;
  // A probe went unanswered: routing avoids the peer until it is heard.
  bool unresponsive = false;
  // Bad frames are logged at most once per 10 s (a broken peer may send
  // thousands a second), with the count of those not logged.
  std::chrono::steady_clock::time_point bad_logged_at{};
  std::size_t bad_unlogged = 0;
  // The peer is routed to no more (GOODBYE, expiry): no new calls; the link
  // closes once the calls in flight are answered (or the peer closes, or
  // falls silent for the dead-peer timeout).
  bool retiring = false;
};

using link_pointer = caf::stateful_actor<link_state>*;

void fail_pending(link_pointer self, const std::string& why) {
  for (auto& [u, promise] : self->state.pending) {
    call_outcome out;
    out.error = rpc_error(error_code::node_lost, "lost the link to " + self->state.url + ": " + why,
                          json::make_object({{"peer", self->state.url}}));
    promise.deliver(std::move(out));
  }
  self->state.pending.clear();
}

caf::timespan probe_interval(const node_context& ctx) {
  return std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>(ctx.config.gossip_interval));
}

void start_probing(link_pointer self) {
  auto& st = self->state;
  if (st.probing)
    return;
  st.probing = true;
  st.last_heard = std::chrono::steady_clock::now();
  self->delayed_send(self, probe_interval(*st.ctx), tick_atom::value);
}

void probe(link_pointer self) {
  auto& st = self->state;
  if (st.pending.empty()) {
    st.probing = false;
    return;
  }
  auto silent = std::chrono::duration<double>(std::chrono::steady_clock::now() - st.last_heard);
  // Silent for more than one probe interval since a probe went out: a
  // healthy peer answers STATUS at once, whatever its functions are doing.
  if (!st.unresponsive && silent.count() > 1.5 * st.ctx->config.gossip_interval) {
    st.unresponsive = true;
    st.ctx->routes.set_unresponsive(st.url, caf::actor_cast<caf::actor>(self), true);
    MPREG_LOG(warn, "peer " << st.url << " has not answered for "
                            << static_cast<int>(silent.count())
                            << " s: new calls go to other nodes while it is silent");
  }
  if (silent.count() > st.ctx->config.dead_peer_timeout) {
    std::string why = "no answer for " + std::to_string(static_cast<int>(silent.count())) + " s";
    MPREG_LOG(warn, "peer " << st.url << " stopped answering: " << why);
    st.conn->close(why);
    fail_pending(self, why);
    self->quit(caf::make_error(caf::sec::runtime_error, "peer unresponsive"));
    return;
  }
  protocol::server_message status;
  status.u = protocol::new_id();
  status.what = "STATUS";
  st.conn->send(protocol::encode(status));
  self->delayed_send(self, probe_interval(*st.ctx), tick_atom::value);
}

void warn_bad_frame(link_pointer self, const std::string& why) {
  auto& st = self->state;
  auto now = std::chrono::steady_clock::now();
  if (st.bad_logged_at != std::chrono::steady_clock::time_point{} &&
      now - st.bad_logged_at < std::chrono::seconds(10)) {
    ++st.bad_unlogged;
    return;
  }
  if (st.bad_unlogged > 0)
    MPREG_LOG(warn, "peer " << st.url << ": bad frame: " << why << " (and " << st.bad_unlogged
                            << " more since the last such line)");
  else
    MPREG_LOG(warn, "peer " << st.url << ": bad frame: " << why);
  st.bad_logged_at = now;
  st.bad_unlogged = 0;
}

void on_frame(link_pointer self, std::string& frame) {
  auto& st = self->state;
  st.last_heard = std::chrono::steady_clock::now();
  if (st.unresponsive) {
    st.unresponsive = false;
    st.ctx->routes.set_unresponsive(st.url, caf::actor_cast<caf::actor>(self), false);
    MPREG_LOG(info, "peer " << st.url << " answers again");
  }
  auto msg = protocol::decode_frame(std::move(frame));
  if (auto a = std::get_if<protocol::internal_answer>(&msg)) {
    auto i = st.pending.find(a->u);
    if (i == st.pending.end())
      return; // the caller gave up (deadline) long ago
    i->second.deliver(call_outcome{std::move(a->answer), std::move(a->error)});
    st.pending.erase(i);
  } else if (auto r = std::get_if<response>(&msg)) {
    if (auto i = st.pending.find(r->u); i != st.pending.end()) {
      // The peer answered our call as a bad frame (an error response, not
      // an internal-answer): it will not run it, here or on a retry.
      std::string why = r->error ? r->error->message : "an answer without a role";
      i->second.deliver(call_outcome{
        json{}, rpc_error(error_code::internal_error, "peer " + st.url + " refused the call: " + why,
                          json::make_object({{"peer", st.url}}))});
      st.pending.erase(i);
      return;
    }
    if (r->u != st.hello_u)
      return; // GONE and friends need no action
    if (r->error) {
      MPREG_LOG(warn, "peer " << st.url << " refused our HELLO: " << r->error->message);
      self->send(st.supervisor, link_refused_atom::value, st.url, r->error->message);
      st.conn->close("HELLO refused");
      self->quit(); // normal exit: refused links are not restarted
      return;
    }
    st.ready = true;
    MPREG_LOG(info, "linked to peer " << st.url);
    self->send(st.supervisor, link_up_atom::value, st.url, caf::actor_cast<caf::actor>(self));
  } else if (auto bad = std::get_if<protocol::decode_failure>(&msg)) {
    auto i = st.pending.find(bad->u);
    if (i == st.pending.end()) {
      warn_bad_frame(self, bad->error.message);
      return;
    }
    // A malformed answer to a call: this peer is at fault, so the command
    // is taken as lost here and retried on another node when one has it.
    i->second.deliver(call_outcome{
      json{}, rpc_error(error_code::node_lost,
                        "peer " + st.url + " sent a malformed answer: " + bad->error.message,
                        json::make_object({{"peer", st.url}}))});
    st.pending.erase(i);
  }
}

// A retiring link whose last call was answered is done.
void close_if_retired(link_pointer self) {
  auto& st = self->state;
  if (!st.retiring || !st.pending.empty())
    return;
  st.conn->close("peer no longer routed to");
  self->quit();
}

caf::behavior link_behavior(link_pointer self, std::shared_ptr<node_context> ctx, std::string url,
                            caf::actor supervisor) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.url = std::move(url);
  st.supervisor = std::move(supervisor);
  // Transport callbacks run on the endpoint's thread: they only post messages,
  // through a weak handle so a stopped node is not kept alive by them.
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(self);
  auto post = [weak](auto... xs) {
    if (auto strong = weak.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(strong), std::move(xs)...);
  };
  transport::ws_handlers h;
  h.on_open = [post] { post(link_open_atom::value); };
  h.on_message = [post](std::string&& frame) { post(frame_atom::value, std::move(frame)); };
  h.on_close = [post](std::string reason) { post(link_closed_atom::value, std::move(reason)); };
  auto transport = std::atomic_load(&st.ctx->link_transport);
  if (!transport) { // the node is being destroyed
    self->quit(caf::make_error(caf::sec::runtime_error, "node is stopping"));
    return {};
  }
  st.conn = transport->connect(st.url, std::move(h));
  transport.reset();
  self->attach_functor([conn = st.conn] { conn->close("link stopped"); });
  // However the link is stopped, its calls are answered: CAF 0.17 drops a
  // response promise that is destroyed undelivered, which would leave the
  // job waiting for ever.
  self->set_exit_handler([self](caf::exit_msg& m) {
    fail_pending(self, "link stopped");
    self->quit(std::move(m.reason));
  });
  return {
    [self](link_open_atom) {
      auto& st = self->state;
      st.hello_u = protocol::new_id();
      st.conn->send(hello_frame(*st.ctx, st.hello_u));
      self->send(st.supervisor, link_open_atom::value, st.url, caf::actor_cast<caf::actor>(self),
                 st.conn->remote_endpoint());
    },
    [self](frame_atom, std::string& frame) {
      try {
        on_frame(self, frame);
      } catch (const std::exception& e) {
        warn_bad_frame(self, e.what());
      }
      close_if_retired(self);
    },
    [self](link_closed_atom, std::string& reason) {
      if (self->state.ready)
        MPREG_LOG(warn, "link to " << self->state.url << " closed: " << reason);
      else
        MPREG_LOG(debug, "link to " << self->state.url << " failed: " << reason);
      fail_pending(self, reason);
      self->quit(caf::make_error(caf::sec::runtime_error, reason));
    },
    [self](forward_atom, protocol::internal_rpc& call) -> caf::result<call_outcome> {
      auto& st = self->state;
      auto frame = protocol::encode(call);
      // A call over the frame limit would make the peer close the link (1009)
      // and fail every other call on it: this one fails alone, and would
      // anywhere else too.
      const auto limit = st.ctx->config.max_message_size;
      if (frame.size() > limit) {
        call_outcome out;
        out.error = rpc_error(
          error_code::execution_failed,
          "arguments too large: the call to '" + call.command + "' would be a " +
            std::to_string(frame.size()) + "-byte frame, over max_message_size (" +
            std::to_string(limit) + ")",
          json::make_object({{"peer", st.url}, {"max_message_size", limit}}));
        return out;
      }
      if (!st.ready || st.retiring || !st.conn->send(std::move(frame))) {
        call_outcome out;
        out.error = rpc_error(error_code::node_lost, "no open link to " + st.url,
                              json::make_object({{"peer", st.url}}));
        return out;
      }
      auto promise = self->make_response_promise();
      st.pending.emplace(call.u, promise);
      start_probing(self);
      return caf::delegated<call_outcome>{};
    },
    [self](leave_atom) {
      auto& st = self->state;
      if (st.ready) {
        protocol::server_message bye;
        bye.u = protocol::new_id();
        bye.what = "GOODBYE";
        st.conn->send(protocol::encode(bye));
      }
      st.conn->close("node leaving");
      fail_pending(self, "this node is stopping");
      self->quit();
      return true;
    },
    [self](retire_atom) {
      self->state.retiring = true;
      close_if_retired(self);
    },
    [self](tick_atom) { probe(self); },
    [self](send_atom, std::string& frame) {
      if (self->state.ready)
        self->state.conn->send(std::move(frame));
    },
  };
}

} // namespace

std::string hello_frame(const node_context& ctx, const std::string& u, const std::string* only) {
  protocol::server_message m;
  m.u = u;
  m.what = "HELLO";
  m.advert.cluster_id = ctx.config.cluster_id;
  m.advert.locs.assign(ctx.resources.begin(), ctx.resources.end());
  m.advert.advertised_urls = ctx.config.advertised_urls;
  auto fun_locs = ctx.functions.function_resources();
  if (only) {
    m.advert.funs = {*only};
    if (auto i = fun_locs.find(*only); i != fun_locs.end())
      m.advert.fun_locs[*only] = i->second;
  } else {
    m.advert.funs = ctx.functions.names();
    m.advert.fun_locs = std::move(fun_locs);
  }
  return protocol::encode(m);
}

caf::actor spawn_peer_link(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                           std::string url, caf::actor supervisor) {
  return sys.spawn(link_behavior, std::move(ctx), std::move(url), std::move(supervisor));
}

} // namespace mpreg
