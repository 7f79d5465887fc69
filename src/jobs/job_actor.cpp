#include "jobs/job_actor.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <random>
#include <optional>
#include <vector>

#include <caf/all.hpp>

#include "jobs/request_graph.hpp"
#include "json/size_estimate.hpp"
#include "bridge/ws_server.hpp"
#include "node/node_context.hpp"
#include "peers/cluster_messages.hpp"
#include "protocol/codec.hpp"
#include "util/log.hpp"

namespace mpreg {

namespace {

struct job_state {
  static inline const char* name = "mpreg.job";

  std::shared_ptr<node_context> ctx;
  /// Set for a connection's job: the answer is written here, encoded once.
  /// Unset for in-process jobs: the answer goes through `promise`.
  std::shared_ptr<bridge::outbound> out;
  request req;
  std::unique_ptr<request_graph> graph;
  caf::typed_response_promise<response> promise;
  std::vector<std::optional<json>> results;
  // CAF shuts down an actor nobody references. While commands run on the
  // pool or on peers (which hold only weak handles) the job holds itself.
  caf::strong_actor_ptr keep_alive;
  std::vector<std::size_t> sizes;      // encoded size estimate of each result
  std::vector<std::size_t> waiting_on; // unfinished dependencies per command
  std::deque<std::size_t> ready;
  std::vector<std::vector<std::string>> tried;      // peers tried per command
  std::vector<std::optional<rpc_error>> last_loss;  // why the last peer failed
  std::size_t finished = 0;
  bool answered = false;
};

using job_pointer = job_actor::stateful_pointer<job_state>;

std::size_t max_size(const job_state& st) {
  return st.ctx->config.max_message_size;
}

void answer(job_pointer self, response resp) {
  auto& st = self->state;
  if (st.answered)
    return;
  st.answered = true;
  st.keep_alive = nullptr;
  resp.u = st.req.u;
  st.ctx->requests_total.fetch_add(1, std::memory_order_relaxed);
  if (resp.error)
    st.ctx->requests_failed.fetch_add(1, std::memory_order_relaxed);
  if (st.out)
    st.out->send(protocol::encode(resp));
  else
    st.promise.deliver(std::move(resp));
  // Functions still running on the pool finish into a dead mailbox.
  self->quit();
}

void fail(job_pointer self, rpc_error err) {
  response r;
  r.error = std::move(err);
  answer(self, std::move(r));
}

json command_details(const command& c, json extra = {}) {
  json d = json::make_object({{"command", c.name}, {"function", c.fun}});
  if (extra.is_object())
    for (auto& m : extra.as_object())
      d[m.key] = std::move(m.value);
  return d;
}

void finish(job_pointer self) {
  auto& st = self->state;
  json::object r;
  std::size_t total = 0;
  for (std::size_t i = 0; i < st.req.cmds.size(); ++i)
    if (st.graph->is_sink(i)) {
      total += encoded_size_estimate(*st.results[i]) + st.req.cmds[i].name.size() + 4;
      r.push_back(json_member{st.req.cmds[i].name, std::move(*st.results[i])});
    }
  if (total > max_size(st)) {
    fail(self, rpc_error(error_code::execution_failed, "result too large: the response would exceed " +
                                                         std::to_string(max_size(st)) + " bytes",
                         json::make_object({{"max_message_size", max_size(st)}})));
    return;
  }
  response resp;
  resp.r = json{std::move(r)};
  answer(self, std::move(resp));
}

// Records a command's outcome and releases the commands waiting on it.
void complete(job_pointer self, std::size_t i, call_outcome out) {
  auto& st = self->state;
  if (st.answered || st.results[i])
    return;
  const auto& cmd = st.req.cmds[i];
  if (out.error) {
    auto err = std::move(*out.error);
    // Say which command failed, keeping what the function said.
    err.details = command_details(cmd, std::move(err.details));
    fail(self, std::move(err));
    return;
  }
  auto size = encoded_size_estimate(out.value);
  if (size > max_size(st)) {
    fail(self, rpc_error(error_code::execution_failed,
                         "result too large: command '" + cmd.name + "' produced more than " +
                           std::to_string(max_size(st)) + " bytes",
                         command_details(cmd, json::make_object({{"max_message_size", max_size(st)}}))));
    return;
  }
  st.results[i] = std::move(out.value);
  st.sizes[i] = size;
  ++st.finished;
  for (auto d : st.graph->dependents(i))
    if (--st.waiting_on[d] == 0)
      st.ready.push_back(d);
}

void pump(job_pointer self);

json string_array(const std::vector<std::string>& xs) {
  json::array a;
  for (const auto& x : xs)
    a.emplace_back(x);
  return json{std::move(a)};
}

void start_command(job_pointer self, std::size_t i);

// A remote run ended without a result: try another node, or give up.
void retry_elsewhere(job_pointer self, std::size_t i, const rpc_error& why) {
  auto& st = self->state;
  if (st.answered || st.results[i])
    return;
  MPREG_LOG(debug, "command '" << st.req.cmds[i].name << "' lost its node: " << why.message);
  st.last_loss[i] = why;
  start_command(self, i);
  pump(self);
}

void run_remote(job_pointer self, std::size_t i, const route& target) {
  auto& st = self->state;
  const auto& cmd = st.req.cmds[i];
  auto [args, kwargs] = st.graph->resolve(i, st.results);
  st.tried[i].push_back(target.url);
  protocol::internal_rpc call{protocol::new_id(), cmd.fun, std::move(args), std::move(kwargs)};
  self->request(target.link, caf::infinite, forward_atom::value, std::move(call))
    .then(
      [self, i](call_outcome& out) {
        auto code = out.error ? out.error->code : 0;
        // Lost, or it no longer has the function: another node may do it.
        if (code == static_cast<int>(error_code::node_lost) ||
            code == static_cast<int>(error_code::command_not_found)) {
          retry_elsewhere(self, i, *out.error);
          return;
        }
        complete(self, i, std::move(out));
        pump(self);
      },
      [self, i, url = target.url](caf::error&) {
        retry_elsewhere(self, i, rpc_error(error_code::node_lost, "the link to " + url + " stopped"));
      });
}

void start_command(job_pointer self, std::size_t i) {
  thread_local std::mt19937 rng{std::random_device{}()};
  auto& st = self->state;
  const auto& cmd = st.req.cmds[i];
  // This node stays a choice on a retry too: only remote runs are ever lost
  // (`tried` lists peers), so when the node running a command dies and this
  // node can run it, it does (1008 means no other node could take it).
  auto local = st.ctx->local_match(cmd.fun, cmd.locs);
  auto remotes = st.ctx->routes.candidates(cmd.fun, cmd.locs);
  remotes.erase(std::remove_if(remotes.begin(), remotes.end(),
                               [&](const route& r) {
                                 return std::find(st.tried[i].begin(), st.tried[i].end(), r.url) !=
                                        st.tried[i].end();
                               }),
                remotes.end());
  std::size_t choices = remotes.size() + (local ? 1 : 0);
  if (choices == 0) {
    if (st.last_loss[i]) {
      auto err = *st.last_loss[i];
      fail(self, rpc_error(error_code::node_lost,
                           "command '" + cmd.name + "': the node running it was lost and no other node could take it (" +
                             err.message + ")",
                           command_details(cmd, json::make_object({{"tried", string_array(st.tried[i])}}))));
      return;
    }
    fail(self, rpc_error(error_code::command_not_found,
                         "command '" + cmd.name + "': no node has function '" + cmd.fun + "'" +
                           (cmd.locs.empty() ? std::string{} : " with the requested locs"),
                         command_details(cmd, json::make_object({{"locs", string_array(cmd.locs)}}))));
    return;
  }
  // References copy their producer's result each time they occur: refuse
  // arguments over the limit before building them (one 60 KB result named
  // 2,000 times would otherwise take 120 MB here and again on the wire).
  if (!st.graph->dependencies(i).empty() &&
      st.graph->resolved_size(i, st.sizes, max_size(st)) > max_size(st)) {
    fail(self, rpc_error(error_code::execution_failed,
                         "result too large: the arguments of command '" + cmd.name +
                           "' would exceed " + std::to_string(max_size(st)) + " bytes",
                         command_details(cmd, json::make_object({{"max_message_size", max_size(st)}}))));
    return;
  }
  // Random among every match, this node included, so load spreads.
  std::size_t pick = std::uniform_int_distribution<std::size_t>(0, choices - 1)(rng);
  if (!local || pick < remotes.size()) {
    run_remote(self, i, remotes[local ? pick : pick]);
    return;
  }
  // A local run is final (no retry elsewhere), so a command without
  // references hands over its own arguments instead of a copy.
  auto& own = st.req.cmds[i];
  bool literal = st.graph->dependencies(i).empty();
  if (local->run_inline) {
    if (literal) {
      complete(self, i, invoke_function(*local, own.args, own.kwargs));
    } else {
      auto [args, kwargs] = st.graph->resolve(i, st.results);
      complete(self, i, invoke_function(*local, args, kwargs));
    }
    return;
  }
  auto [args, kwargs] = literal ? std::pair<json::array, json::object>{std::move(own.args),
                                                                       std::move(own.kwargs)}
                                : st.graph->resolve(i, st.results);
  // Off the actor threads: the function may block or take long.
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(self);
  bool queued = st.ctx->pool.submit(
    [weak, i, f = local, args = std::move(args), kwargs = std::move(kwargs)]() mutable {
      auto out = invoke_function(*f, args, kwargs);
      if (auto strong = weak.lock())
        caf::anon_send(caf::actor_cast<job_actor>(strong), command_done{i, std::move(out)});
    });
  if (!queued)
    fail(self, rpc_error(error_code::internal_error, "node is stopping"));
}

// Starts every ready command; inline ones may make more ready (no recursion).
void pump(job_pointer self) {
  auto& st = self->state;
  while (!st.ready.empty() && !st.answered) {
    auto i = st.ready.front();
    st.ready.pop_front();
    start_command(self, i);
  }
  if (!st.answered && st.finished == st.req.cmds.size())
    finish(self);
}

void begin(job_pointer self, request req) {
  auto& st = self->state;
  st.req = std::move(req);
  try {
    st.graph = std::make_unique<request_graph>(st.req);
  } catch (const protocol::protocol_error& e) {
    fail(self, e.error);
    return;
  }
  auto n = st.req.cmds.size();
  st.results.resize(n);
  st.sizes.resize(n);
  st.tried.resize(n);
  st.last_loss.resize(n);
  st.waiting_on.resize(n);
  for (std::size_t i = 0; i < n; ++i)
    st.waiting_on[i] = st.graph->dependencies(i).size();
  for (auto i : st.graph->roots())
    st.ready.push_back(i);
  if (st.req.timeout) {
    double secs = *st.req.timeout;
    // The codec refuses these on the wire; in-process requests get the same.
    if (!(secs > 0)) {
      fail(self, rpc_error(error_code::invalid_request, "field 'timeout' must be positive",
                           json::make_object({{"field", "timeout"}})));
      return;
    }
    // A timespan (int64 ns) holds ~292 years: converting a longer deadline
    // (1e12 s, 1e300 s) overflows into the past. Past ~31 years: no deadline.
    if (secs < 1e9) {
      auto d = std::chrono::duration_cast<caf::timespan>(std::chrono::duration<double>(secs));
      self->delayed_send(self, d, deadline_atom::value);
    }
  }
  pump(self);
}

void start(job_pointer self, request req) {
  self->state.keep_alive = caf::actor_cast<caf::strong_actor_ptr>(self);
  try {
    begin(self, std::move(req));
  } catch (const std::exception& e) {
    fail(self, rpc_error(error_code::internal_error, std::string("internal error: ") + e.what()));
  }
}

job_actor::behavior_type job_handlers(job_pointer self) {
  return {
    [self](request& req) -> caf::typed_response_promise<response> {
      auto& st = self->state;
      st.promise = self->make_response_promise<response>();
      start(self, std::move(req));
      return st.promise;
    },
    [self](command_done& done) {
      auto& st = self->state;
      if (st.answered || done.index >= st.results.size())
        return;
      try {
        complete(self, done.index, std::move(done.outcome));
        pump(self);
      } catch (const std::exception& e) {
        fail(self, rpc_error(error_code::internal_error, std::string("internal error: ") + e.what()));
      }
    },
    [self](deadline_atom) {
      auto& st = self->state;
      json::array pending;
      for (std::size_t i = 0; i < st.req.cmds.size(); ++i)
        if (!st.results[i])
          pending.emplace_back(st.req.cmds[i].name);
      fail(self, rpc_error(error_code::deadline_exceeded,
                           "deadline exceeded after " + json(*st.req.timeout).dump() + " s",
                           json::make_object({{"timeout", *st.req.timeout},
                                              {"pending", json{std::move(pending)}}})));
    },
  };
}

// In-process: waits for the request message (sent with request/delegate).
job_actor::behavior_type job_behavior(job_pointer self, std::shared_ptr<node_context> ctx) {
  self->state.ctx = std::move(ctx);
  return job_handlers(self);
}

// A connection's job starts with its request in hand (spawn arguments are no
// message): a request of inline functions is answered before this returns,
// without a single mailbox round trip.
job_actor::behavior_type connection_job_behavior(job_pointer self,
                                                 std::shared_ptr<node_context> ctx,
                                                 std::shared_ptr<bridge::outbound> out,
                                                 request req) {
  self->state.ctx = std::move(ctx);
  self->state.out = std::move(out);
  start(self, std::move(req));
  return job_handlers(self);
}

} // namespace

job_actor spawn_job(caf::actor_system& sys, std::shared_ptr<node_context> ctx) {
  return sys.spawn(job_behavior, std::move(ctx));
}

job_actor spawn_connection_job(caf::local_actor* session, std::shared_ptr<node_context> ctx,
                               std::shared_ptr<bridge::outbound> out, request req) {
  return session->spawn<caf::linked>(connection_job_behavior, std::move(ctx), std::move(out),
                              std::move(req));
}

} // namespace mpreg
