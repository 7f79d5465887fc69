#include "sessions/session_actor.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <list>
#include <optional>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "jobs/job_actor.hpp"
#include "jobs/request_run.hpp"
#include "node/node_context.hpp"
#include "peers/cluster_messages.hpp"
#include "peers/peer_view.hpp"
#include "protocol/codec.hpp"
#include "util/ask_all.hpp"
#include "util/log.hpp"

namespace mpreg {

namespace {

struct session_state {
  static inline const char* name = "mpreg.session";
  std::shared_ptr<node_context> ctx;
  std::shared_ptr<bridge::outbound> out;
  // Set when the other side is a peer node that said HELLO on this connection.
  std::string peer_url;
  // The first HELLO on a connection carries the peer's whole advert; later
  // ones only functions registered since.
  bool hello_seen = false;
  // This connection's requests that run in job actors (monitored: each
  // one's end removes it), for the node's stop and the connection's close.
  std::unordered_map<caf::actor_addr, job_actor> jobs;
  // Requests read while `jobs` is at settings::max_in_flight wait here, in
  // order (about max_in_flight of them, plus one burst of reads: then
  // reading is paused).
  struct waiting_request {
    request req;
    std::chrono::steady_clock::time_point arrived;
    std::optional<std::chrono::steady_clock::time_point> deadline; // from its timeout
  };
  // A list: an empty std::deque allocates (about 600 bytes per session).
  std::list<waiting_request> waiting;
  // The earliest deadline a waiting_deadline_atom is on its way for.
  std::optional<std::chrono::steady_clock::time_point> timer_at;
  // Reading is paused for waiting requests (see start_or_wait) or for
  // forwarded calls (see run_internal_call).
  bool paused = false;
  bool paused_for_calls = false;
  // Forwarded calls (internal-rpc) this connection has on the pool, shared
  // with their tasks. Created at the first one.
  struct internal_calls {
    std::atomic<std::size_t> running{0};
    std::atomic<bool> ended{false}; // the session is gone: skip what has not started
  };
  std::shared_ptr<internal_calls> calls;

  // However the session ends, the jobs it still has are cancelled: their
  // connection is gone, so their answers would go nowhere.
  ~session_state() {
    for (auto& [addr, job] : jobs)
      caf::anon_send_exit(job, caf::exit_reason::user_shutdown);
    if (calls)
      calls->ended.store(true);
  }
};

using session_pointer = session_actor::stateful_pointer<session_state>;

// Reads the connection or not, as the two reasons to pause say.
void update_reading(session_pointer self, bool& reason, bool paused) {
  auto& st = self->state;
  bool before = st.paused || st.paused_for_calls;
  reason = paused;
  bool after = st.paused || st.paused_for_calls;
  if (before != after)
    st.out->pause_reading(after);
}

void reply_error(session_pointer self, const std::string& u, const rpc_error& err) {
  response r;
  r.u = u;
  r.error = err;
  self->state.out->send(protocol::encode(r));
}

void arm_waiting_timer(session_pointer self, std::chrono::steady_clock::time_point when) {
  auto& st = self->state;
  if (st.timer_at && *st.timer_at <= when)
    return; // an earlier one is on its way; it re-arms for the rest
  st.timer_at = when;
  auto after = std::max(when - std::chrono::steady_clock::now(),
                        std::chrono::steady_clock::duration::zero());
  self->delayed_send(self, std::chrono::duration_cast<caf::timespan>(after),
                     waiting_deadline_atom::value);
}

// A waiting request's timeout runs while it waits: it is answered 1007 as
// if it had run, with every command pending.
void answer_timed_out(session_pointer self, const request& req) {
  json::array pending;
  for (const auto& c : req.cmds)
    pending.emplace_back(c.name);
  reply_error(self, req.u, deadline_error(*req.timeout, std::move(pending)));
}

void expire_waiting(session_pointer self) {
  auto& st = self->state;
  auto now = std::chrono::steady_clock::now();
  // A timer overtaken by an earlier one (which re-armed for the rest) is
  // stale: without this each would start a chain of its own.
  if (st.timer_at && now < *st.timer_at)
    return;
  st.timer_at.reset();
  std::optional<std::chrono::steady_clock::time_point> next;
  for (auto it = st.waiting.begin(); it != st.waiting.end();) {
    if (it->deadline && *it->deadline <= now) {
      answer_timed_out(self, it->req);
      it = st.waiting.erase(it);
      continue;
    }
    if (it->deadline && (!next || *it->deadline < *next))
      next = it->deadline;
    ++it;
  }
  if (next)
    arm_waiting_timer(self, *next);
}

void start_request(session_pointer self, request req, double waited = 0) {
  // The answer goes straight to the connection, never through this actor.
  auto& st = self->state;
  if (auto job = run_connection_request(self, st.ctx, st.out, std::move(req), waited))
    st.jobs.emplace(job.address(), std::move(job));
}

// Backpressure: a connection runs at most max_in_flight requests that wait
// (on the pool or a peer). Past that, requests wait in the session; when as
// many again wait, the connection is read no more, so one client's flood
// stays in its own socket instead of taking the node's threads, memory and
// actor time from others.
void start_or_wait(session_pointer self, request req) {
  auto& st = self->state;
  if (st.ctx->stopping.load()) {
    reply_error(self, req.u, node_stopping_error());
    return;
  }
  if (st.waiting.empty() && st.jobs.size() < st.ctx->config.max_in_flight) {
    start_request(self, std::move(req));
    return;
  }
  auto now = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (req.timeout && is_deadline(*req.timeout))
    deadline = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                       std::chrono::duration<double>(*req.timeout));
  st.waiting.push_back({std::move(req), now, deadline});
  if (deadline)
    arm_waiting_timer(self, *deadline);
  // Reading stops only when as many again wait: a paused connection answers
  // no WebSocket pings either (clients' keepalives give up after ~20-40 s),
  // so a client that merely has many long calls in flight is not paused.
  if (!st.paused && st.waiting.size() >= st.ctx->config.max_in_flight)
    update_reading(self, st.paused, true);
}

void job_ended(session_pointer self, const caf::actor_addr& job) {
  auto& st = self->state;
  st.jobs.erase(job);
  const auto limit = st.ctx->config.max_in_flight;
  while (!st.waiting.empty() && st.jobs.size() < limit) {
    auto next = std::move(st.waiting.front());
    st.waiting.pop_front();
    if (st.ctx->stopping.load()) {
      reply_error(self, next.req.u, node_stopping_error());
      continue;
    }
    // A request's timeout counts from its arrival, waiting included.
    auto now = std::chrono::steady_clock::now();
    if (next.deadline && now >= *next.deadline) {
      answer_timed_out(self, next.req);
      continue;
    }
    start_request(self, std::move(next.req),
                  std::chrono::duration<double>(now - next.arrived).count());
  }
  // Half the limit, not one below it: one pause per burst, not per answer.
  if (st.paused && st.waiting.size() <= limit / 2)
    update_reading(self, st.paused, false);
}

// Every running request answers before the reply: asked in parallel, each
// job answers at once (its commands run elsewhere), half a second at most.
caf::result<bool> stop_requests(session_pointer self) {
  for (auto& w : self->state.waiting)
    reply_error(self, w.req.u, node_stopping_error());
  self->state.waiting.clear();
  std::vector<job_actor> jobs;
  for (const auto& [addr, job] : self->state.jobs)
    jobs.push_back(job);
  auto promise = self->make_response_promise<bool>();
  util::ask_all(self, jobs, std::chrono::milliseconds(500), stopping_atom::value,
                [promise]() mutable { promise.deliver(true); });
  return promise;
}

// Forwarded calls a connection may have on the pool (a peer's link carries
// the calls of all its clients, so more than one client's max_in_flight):
// past it, a peer's calls are refused as "busy" (1008: its node tries
// another, and nothing ran twice), and any other connection is read no more
// until the level where it is read again. A peer's connection is never
// paused: it would stop answering the liveness probes (STATUS) that tell
// its node we are alive, and be dropped with its calls still running here.
std::size_t calls_pause_at(const node_context& ctx) { return 2 * ctx.config.max_in_flight; }
std::size_t calls_resume_at(const node_context& ctx) { return ctx.config.max_in_flight; }

void calls_done(session_pointer self) {
  auto& st = self->state;
  if (st.paused_for_calls && st.calls->running.load() <= calls_resume_at(*st.ctx))
    update_reading(self, st.paused_for_calls, false);
}

void run_internal_call(session_pointer self, protocol::internal_rpc call) {
  auto& st = self->state;
  auto& ctx = *st.ctx;
  auto out = st.out;
  auto f = ctx.functions.find(call.command);
  if (!f) {
    protocol::internal_answer a{call.u, json{}, rpc_error(error_code::command_not_found,
                                                          "no function '" + call.command + "' here")};
    out->send(protocol::encode(a));
    return;
  }
  // A stopping or busy node is, to its caller, a node lost (1008): the
  // caller retries the command on another node instead of failing its
  // request, and nothing ran here.
  auto refuse = [&out](const std::string& u, std::string why, json details = {}) {
    out->send(protocol::encode(protocol::internal_answer{
      u, json{}, rpc_error(error_code::node_lost, std::move(why), std::move(details))}));
  };
  if (ctx.stopping.load()) {
    refuse(call.u, "node is stopping");
    return;
  }
  const bool on_pool = !f->run_inline;
  if (on_pool && !st.peer_url.empty() && st.calls &&
      st.calls->running.load() >= calls_pause_at(ctx)) {
    refuse(call.u,
           "node busy: " + std::to_string(st.calls->running.load()) +
             " calls from this peer running; try another node",
           json::make_object({{"limit", calls_pause_at(ctx)}}));
    return;
  }
  std::string u = on_pool ? call.u : std::string{}; // the task takes the call
  auto task = [out, f, call = std::move(call), limit = ctx.config.max_message_size] {
    auto result = invoke_function(*f, call.args, call.kwargs);
    auto frame = protocol::encode(
      protocol::internal_answer{call.u, std::move(result.value), std::move(result.error)});
    // An answer over the frame limit would close the link and fail every
    // other call on it: fail just this one.
    if (frame.size() > limit)
      frame = protocol::encode(protocol::internal_answer{
        call.u, json{},
        rpc_error(error_code::execution_failed,
                  "result too large: function '" + f->name + "' produced more than " +
                    std::to_string(limit) + " bytes",
                  json::make_object({{"function", f->name}, {"max_message_size", limit}}))});
    out->send(std::move(frame));
  };
  if (!on_pool) {
    task();
    return;
  }
  // On the pool: counted, so that a peer (or anyone sending internal-rpc)
  // cannot queue without bound; skipped once the connection is gone, as
  // its answer would go nowhere.
  if (!st.calls)
    st.calls = std::make_shared<session_state::internal_calls>();
  auto calls = st.calls;
  const auto resume_at = calls_resume_at(ctx);
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(self);
  calls->running.fetch_add(1);
  // Owner: the connection, as for its requests' jobs (job_actor.cpp).
  bool queued = ctx.pool.submit(
    [calls, weak, resume_at, task = std::move(task)]() mutable {
      if (!calls->ended.load())
        task();
      if (calls->running.fetch_sub(1) - 1 == resume_at)
        if (auto strong = weak.lock())
          caf::anon_send(caf::actor_cast<session_actor>(strong), calls_done_atom::value);
    },
    st.out.get());
  if (!queued) {
    calls->running.fetch_sub(1);
    refuse(u, "node is stopping");
    return;
  }
  if (st.peer_url.empty() && !st.paused_for_calls && calls->running.load() >= calls_pause_at(ctx))
    update_reading(self, st.paused_for_calls, true);
}

void handle_server_message(session_pointer self, const protocol::server_message& m) {
  auto& ctx = *self->state.ctx;
  response r;
  r.u = m.u;
  if (m.what == "HELLO") {
    if (ctx.stopping.load()) {
      // A stopping node takes no new peers: its GOODBYE has gone out, and
      // an ADDED now would bring back the route the GOODBYE removed. The
      // peer's link fails and retries with backoff, finding the restarted
      // node (or none).
      self->state.out->close(1001, "node stopping");
      return;
    }
    if (m.advert.cluster_id != ctx.config.cluster_id) { // required by the decoder
      reply_error(self, m.u,
                  rpc_error(error_code::cluster_id_mismatch,
                            "cluster ID mismatch: this node is in '" + ctx.config.cluster_id +
                              "', the peer in '" + m.advert.cluster_id + "'",
                            json::make_object({{"expected", ctx.config.cluster_id},
                                               {"got", m.advert.cluster_id}})));
      self->state.out->close(1008, "cluster ID mismatch");
      return;
    }
    // A peer is known by its first advertised URL, else by its address.
    auto& st = self->state;
    std::optional<std::string> advertised;
    if (!m.advert.advertised_urls.empty())
      advertised = normal_peer_url(m.advert.advertised_urls[0]);
    if (advertised)
      st.peer_url = *advertised;
    else if (st.peer_url.empty())
      st.peer_url = "ws://" + st.out->remote();
    // A link of this node's own, opened to an address that turned out to be
    // this node (an alias from gossip): refused, so it is never used.
    if (is_self_url(ctx, st.peer_url)) {
      reply_error(self, m.u,
                  rpc_error(error_code::invalid_request,
                            "HELLO from this node itself: " + st.peer_url + " is its own address",
                            json::make_object({{"url", st.peer_url}})));
      self->state.out->close(1008, "a node does not peer with itself");
      return;
    }
    bool full = !st.hello_seen;
    st.hello_seen = true;
    // ADDED once the supervisor can route to the peer (bounded: a peer whose
    // advertised URL does not answer still gets its ADDED).
    auto added = [self, u = m.u] {
      self->state.out->send(protocol::encode(response{u, json("ADDED"), std::nullopt}));
    };
    self->request(ctx.supervisor, std::chrono::seconds(2), hello_atom::value, st.peer_url,
                  m.advert, full)
      .then([added](bool) { added(); }, [added](caf::error&) { added(); });
    return;
  } else if (m.what == "GOODBYE") {
    if (!self->state.peer_url.empty())
      caf::anon_send(ctx.supervisor, goodbye_atom::value, self->state.peer_url);
    r.r = json("GONE");
  } else if (m.what == "STATUS") {
    // MPREG answers r "STATUS"; the cluster view rides along as "status" (ext).
    json frame = protocol::to_json(response{m.u, json("STATUS"), std::nullopt});
    frame["status"] = cluster_status(ctx);
    self->state.out->send(frame.dump());
    return;
  } else {
    reply_error(self, m.u, rpc_error(error_code::unknown_message_type,
                                     "unknown server message '" + m.what + "'",
                                     json::make_object({{"what", m.what}})));
    return;
  }
  self->state.out->send(protocol::encode(r));
}

struct dispatcher {
  session_pointer self;
  void operator()(protocol::decode_failure& f) { reply_error(self, f.u, f.error); }
  void operator()(request& r) { start_or_wait(self, std::move(r)); }
  void operator()(protocol::server_message& m) { handle_server_message(self, m); }
  void operator()(protocol::internal_rpc& c) { run_internal_call(self, std::move(c)); }
  void operator()(protocol::internal_answer& a) {
    // Answers arrive on the links this node opened, never on a session: this
    // node made no call over this connection. Said, like any bad frame.
    reply_error(self, a.u,
                rpc_error(error_code::invalid_role,
                          "unexpected 'internal-answer': this node made no calls over this "
                          "connection (it calls peers over links it opens)",
                          json::make_object({{"role", "internal-answer"}})));
  }
  void operator()(protocol::gossip& g) {
    caf::anon_send(self->state.ctx->gossip, gossip_atom::value, std::move(g));
  }
  void operator()(response& r) {
    // An answer-shaped frame (no role, but r or error) is what links read;
    // sent to a node it is a request without a role (1004), not a silence.
    reply_error(self, r.u,
                rpc_error(error_code::invalid_role,
                          "missing field 'role' (a node does not take answers from its clients)",
                          json::make_object({{"field", "role"}})));
  }
};

session_actor::behavior_type session_behavior(session_pointer self,
                                              std::shared_ptr<node_context> ctx,
                                              std::shared_ptr<bridge::outbound> out) {
  self->state.ctx = std::move(ctx);
  self->state.out = std::move(out);
  self->state.ctx->sessions.add(self->id(), caf::actor_cast<caf::weak_actor_ptr>(self));
  self->attach_functor([ctx = self->state.ctx, id = self->id()] { ctx->sessions.remove(id); });
  // Monitored jobs report their end here.
  self->set_down_handler([self](caf::down_msg& m) { job_ended(self, m.source); });
  return {
    [self](frame_atom, frame_batch& batch) {
      for (auto& frame : batch.frames) {
        try {
          auto msg = protocol::decode_frame(std::move(frame));
          std::visit(dispatcher{self}, msg);
        } catch (const std::exception& e) {
          MPREG_LOG(error, "session " << self->state.out->remote() << ": " << e.what());
          reply_error(self, "unknown", rpc_error(error_code::internal_error, "internal error"));
        }
      }
    },
    [self](closed_atom) { self->quit(caf::exit_reason::user_shutdown); },
    [self](waiting_deadline_atom) { expire_waiting(self); },
    [self](calls_done_atom) { calls_done(self); },
    [self](stop_requests_atom) { return stop_requests(self); },
  };
}

} // namespace

session_actor spawn_session(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                            std::shared_ptr<bridge::outbound> out) {
  return sys.spawn(session_behavior, std::move(ctx), std::move(out));
}

} // namespace mpreg
