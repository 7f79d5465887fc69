#include "jobs/request_run.hpp"

#include <algorithm>
#include <chrono>
#include <random>
#include <utility>

#include "jobs/request_graph.hpp"
#include "json/limits.hpp"
#include "json/size_estimate.hpp"
#include "node/node_context.hpp"
#include "util/log.hpp"

namespace mpreg {

namespace {

// The failed command, plus what its function or node said: an object's
// members (never replacing "command" and "function": a peer's details must
// not rename the client's command), anything else under "details".
json command_details(const command& c, json extra = {}) {
  json d = json::make_object({{"command", c.name}, {"function", c.fun}});
  if (extra.is_object()) {
    for (auto& m : extra.as_object())
      if (m.key != "command" && m.key != "function")
        d[m.key] = std::move(m.value);
  } else if (!extra.is_null()) {
    d["details"] = std::move(extra);
  }
  return d;
}

} // namespace

request_run::request_run(std::shared_ptr<node_context> ctx, host& h, bool inline_only)
  : ctx_(std::move(ctx)), host_(h), inline_only_(inline_only) {}

request_run::~request_run() = default;

bool request_run::runs_inline_here(const node_context& ctx, const request& req) {
  for (const auto& c : req.cmds) {
    auto f = ctx.local_match(c.fun, c.locs);
    if (!f || !f->run_inline)
      return false;
  }
  return true;
}

std::size_t request_run::max_size() const {
  return ctx_->config.max_message_size;
}

template <class F>
void request_run::guarded(F&& f) noexcept {
  if (answered_)
    return;
  try {
    f();
  } catch (const std::exception& e) {
    fail(rpc_error(error_code::internal_error, std::string("internal error: ") + e.what()));
  } catch (...) {
    fail(rpc_error(error_code::internal_error, "internal error"));
  }
}

void request_run::deliver(response resp) {
  if (answered_)
    return;
  answered_ = true;
  resp.u = std::move(req_.u); // the run answers once; nothing reads it after
  const bool framed = host_.writes_frames();
  std::string frame;
  if (framed) {
    frame = protocol::encode(resp);
    // finish() only estimated the result's size (escapes and the envelope
    // are not in it): the limit holds for the frame itself.
    if (frame.size() > max_size()) {
      response small;
      small.u = std::move(resp.u);
      small.error = resp.error ? shortened(*resp.error) : response_too_large();
      resp = std::move(small);
      frame = protocol::encode(resp);
    }
  }
  ctx_->requests_total.fetch_add(1, std::memory_order_relaxed);
  if (resp.error)
    ctx_->requests_failed.fetch_add(1, std::memory_order_relaxed);
  if (framed)
    host_.answer_frame(std::move(frame));
  else
    host_.answer(std::move(resp));
}

// Names the sinks, a few short ones at most: the error itself must fit.
rpc_error request_run::response_too_large() const {
  constexpr std::size_t named_at_most = 8;
  constexpr std::size_t longest_name = 64;
  json::array names;
  std::string listed;
  std::size_t sinks = 0;
  for (std::size_t i = 0; i < req_.cmds.size(); ++i) {
    if (!graph_ || !graph_->is_sink(i))
      continue;
    ++sinks;
    const auto& name = req_.cmds[i].name;
    if (names.size() == named_at_most || name.size() > longest_name)
      continue;
    listed += (listed.empty() ? "'" : ", '") + name + "'";
    names.emplace_back(name);
  }
  if (listed.empty())
    listed = std::to_string(sinks) + " commands";
  else if (sinks > names.size())
    listed = "commands " + listed + " and " + std::to_string(sinks - names.size()) + " more";
  else
    listed = "commands " + listed;
  return rpc_error(error_code::execution_failed,
                   "result too large: the response (" + listed + ") would exceed " +
                     std::to_string(max_size()) + " bytes",
                   json::make_object({{"max_message_size", max_size()},
                                      {"commands", json{std::move(names)}},
                                      {"sinks", sinks}}));
}

// An error too large to send (a function's huge message or details): the
// same code, the start of its message, only the limit left in its details.
rpc_error request_run::shortened(const rpc_error& err) const {
  // Room for the envelope, the note and the request's id besides.
  const std::size_t kept = std::min<std::size_t>(512, max_size() / 4);
  std::string message = err.message.substr(0, kept);
  message += " [shortened: the error was over " + std::to_string(max_size()) + " bytes]";
  return rpc_error(err.code, std::move(message),
                   json::make_object({{"max_message_size", max_size()}}));
}

void request_run::fail(rpc_error err) {
  response r;
  r.error = std::move(err);
  deliver(std::move(r));
}

void request_run::start(request req, double waited) noexcept {
  try {
    begin(std::move(req), waited);
  } catch (const std::exception& e) {
    fail(rpc_error(error_code::internal_error, std::string("internal error: ") + e.what()));
  } catch (...) {
    fail(rpc_error(error_code::internal_error, "internal error"));
  }
}

void request_run::begin(request req, double waited) {
  using clock = std::chrono::steady_clock;
  auto started = clock::now(); // building the graph of a large request counts too
  req_ = std::move(req);
  try {
    graph_.emplace(req_);
  } catch (const protocol::protocol_error& e) {
    fail(e.error);
    return;
  }
  auto n = req_.cmds.size();
  results_.resize(n);
  sizes_.resize(n);
  waiting_on_.resize(n);
  ready_.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    waiting_on_[i] = graph_->dependencies(i).size();
    if (waiting_on_[i] == 0)
      ready_.push_back(i);
  }
  if (req_.timeout) {
    double secs = *req_.timeout;
    // The codec refuses these on the wire; in-process requests get the same.
    if (!(secs > 0)) {
      fail(rpc_error(error_code::invalid_request, "field 'timeout' must be positive",
                     json::make_object({{"field", "timeout"}})));
      return;
    }
    if (is_deadline(secs)) {
      auto left = std::chrono::duration<double>(std::max(secs - waited, 0.0));
      // Inline commands run one after another here, with no timer able to
      // interrupt them: pump() looks at the clock between them.
      deadline_at_ = started + std::chrono::duration_cast<clock::duration>(left);
      if (!inline_only_)
        host_.arm_deadline(std::chrono::duration_cast<caf::timespan>(
          std::max(*deadline_at_ - clock::now(), clock::duration::zero())));
    }
  }
  pump();
}

// Starts every ready command; inline ones may make more ready (no recursion).
void request_run::pump() {
  // Every command enters ready_ once, so it never outgrows the request.
  while (ready_head_ < ready_.size() && !answered_) {
    if (deadline_at_ && std::chrono::steady_clock::now() >= *deadline_at_) {
      expire();
      return;
    }
    start_command(ready_[ready_head_++]);
  }
  if (!answered_ && finished_ == req_.cmds.size())
    finish();
}

void request_run::finish() {
  json::object r;
  std::size_t total = 0;
  for (std::size_t i = 0; i < req_.cmds.size(); ++i)
    if (graph_->is_sink(i)) {
      total += encoded_size_estimate(*results_[i]) + req_.cmds[i].name.size() + 4;
      r.push_back(json_member{req_.cmds[i].name, std::move(*results_[i])});
    }
  if (total > max_size()) {
    fail(response_too_large());
    return;
  }
  response resp;
  resp.r = json{std::move(r)};
  deliver(std::move(resp));
}

// Records a command's outcome and releases the commands waiting on it.
void request_run::complete(std::size_t i, call_outcome out) {
  if (answered_ || results_[i])
    return;
  const auto& cmd = req_.cmds[i];
  if (out.error) {
    auto err = std::move(*out.error);
    // Say which command failed, keeping what the function said.
    err.details = command_details(cmd, std::move(err.details));
    fail(std::move(err));
    return;
  }
  auto size = encoded_size_estimate(out.value);
  if (size > max_size()) {
    fail(rpc_error(error_code::execution_failed,
                   "result too large: command '" + cmd.name + "' produced more than " +
                     std::to_string(max_size()) + " bytes",
                   command_details(cmd, json::make_object({{"max_message_size", max_size()}}))));
    return;
  }
  results_[i] = std::move(out.value);
  sizes_[i] = size;
  ++finished_;
  for (auto d : graph_->dependents(i))
    if (--waiting_on_[d] == 0)
      ready_.push_back(d);
}

void request_run::start_command(std::size_t i) {
  thread_local std::mt19937 rng{std::random_device{}()};
  const auto& cmd = req_.cmds[i];
  auto local = ctx_->local_match(cmd.fun, cmd.locs);
  // References copy their producer's result each time they occur: refuse
  // arguments over the limit before building them (one 60 KB result named
  // 2,000 times would otherwise take 120 MB here and again on the wire).
  auto check_size = [&] {
    if (graph_->dependencies(i).empty() ||
        graph_->resolved_size(i, sizes_, max_size()) <= max_size())
      return true;
    fail(rpc_error(error_code::execution_failed,
                   "result too large: the arguments of command '" + cmd.name +
                     "' would exceed " + std::to_string(max_size()) + " bytes",
                   command_details(cmd, json::make_object({{"max_message_size", max_size()}}))));
    return false;
  };
  // An inline function costs less than any hop to a peer: it runs here.
  if (local && (local->run_inline || inline_only_)) {
    if (check_size())
      run_local(i, local);
    return;
  }
  // This node stays a choice on a retry too: only remote runs are ever lost
  // (`tried` lists peers), so when the node running a command dies and this
  // node can run it, it does (1008 means no other node could take it).
  std::vector<route> remotes;
  if (!inline_only_) {
    remotes = ctx_->routes.candidates(cmd.fun, cmd.locs);
    if (!remote_.empty()) {
      const auto& tried = remote_[i].tried;
      remotes.erase(std::remove_if(remotes.begin(), remotes.end(),
                                   [&](const route& r) {
                                     return std::find(tried.begin(), tried.end(), r.url) !=
                                            tried.end();
                                   }),
                    remotes.end());
    }
    // A peer that stopped answering its link's probes gets the call only
    // when nothing else can take it (frozen or overloaded: the call would
    // most likely wait for the dead-peer timeout).
    if (local || std::any_of(remotes.begin(), remotes.end(),
                             [](const route& r) { return !r.unresponsive; }))
      remotes.erase(std::remove_if(remotes.begin(), remotes.end(),
                                   [](const route& r) { return r.unresponsive; }),
                    remotes.end());
  }
  std::size_t choices = remotes.size() + (local ? 1 : 0);
  if (choices == 0) {
    if (!remote_.empty() && remote_[i].last_loss) {
      auto err = *remote_[i].last_loss;
      auto tried = json::make_object({{"tried", protocol::string_array(remote_[i].tried)}});
      // Every node tried said it has no such function (any more): then no
      // node has it, which is 1001, not a lost node.
      if (!remote_[i].node_lost) {
        fail(rpc_error(error_code::command_not_found,
                       "command '" + cmd.name + "': no node has function '" + cmd.fun +
                         "' (" + err.message + ")",
                       command_details(cmd, std::move(tried))));
        return;
      }
      fail(rpc_error(error_code::node_lost,
                     "command '" + cmd.name +
                       "': the node running it was lost and no other node could take it (" +
                       err.message + ")",
                     command_details(cmd, std::move(tried))));
      return;
    }
    fail(rpc_error(error_code::command_not_found,
                   "command '" + cmd.name + "': no node has function '" + cmd.fun + "'" +
                     (cmd.locs.empty() ? std::string{} : " with the requested locs"),
                   command_details(cmd, json::make_object({{"locs", protocol::string_array(cmd.locs)}}))));
    return;
  }
  if (!check_size())
    return;
  // Random among every match, this node included, so load spreads.
  std::size_t pick = std::uniform_int_distribution<std::size_t>(0, choices - 1)(rng);
  if (pick < remotes.size()) {
    const auto& target = remotes[pick];
    auto [args, kwargs] = graph_->resolve(i, results_);
    // A reference deep inside an argument can make the call deeper than the
    // peer's reader takes: it would refuse the frame, not run the command.
    bool too_deep =
      std::any_of(args.begin(), args.end(),
                  [](const json& a) { return nested_deeper_than(a, detail::max_value_depth); }) ||
      std::any_of(kwargs.begin(), kwargs.end(), [](const json_member& m) {
        return nested_deeper_than(m.value, detail::max_value_depth);
      });
    if (too_deep) {
      fail(rpc_error(error_code::execution_failed,
                     "arguments nested too deep: command '" + cmd.name + "' would send more than " +
                       std::to_string(detail::max_value_depth) +
                       " levels of arrays and objects to a peer",
                     command_details(cmd, json::make_object(
                                            {{"max_depth", detail::max_value_depth}}))));
      return;
    }
    if (remote_.empty())
      remote_.resize(req_.cmds.size());
    remote_[i].tried.push_back(target.url);
    host_.run_remote(i, target,
                     protocol::internal_rpc{protocol::new_id(), cmd.fun, std::move(args),
                                            std::move(kwargs)});
    return;
  }
  run_local(i, local);
}

void request_run::run_local(std::size_t i, const std::shared_ptr<const local_function>& f) {
  // A local run is final (no retry elsewhere), so a command without
  // references hands over its own arguments instead of a copy.
  auto& own = req_.cmds[i];
  bool literal = graph_->dependencies(i).empty();
  if (f->run_inline || inline_only_) {
    if (literal) {
      complete(i, invoke_function(*f, own.args, own.kwargs));
    } else {
      auto [args, kwargs] = graph_->resolve(i, results_);
      complete(i, invoke_function(*f, args, kwargs));
    }
    return;
  }
  auto [args, kwargs] = literal ? std::pair<json::array, json::object>{std::move(own.args),
                                                                       std::move(own.kwargs)}
                                : graph_->resolve(i, results_);
  // Off the actor threads: the function may block or take long.
  if (!host_.run_on_pool(i, f, std::move(args), std::move(kwargs)))
    fail(node_stopping_error());
}

void request_run::local_done(std::size_t i, call_outcome out) noexcept {
  guarded([&] {
    if (i >= results_.size())
      return;
    complete(i, std::move(out));
    pump();
  });
}

void request_run::remote_done(std::size_t i, call_outcome out) noexcept {
  guarded([&] {
    if (i >= results_.size())
      return;
    auto code = out.error ? out.error->code : 0;
    // Lost, or it no longer has the function: another node may do it.
    if (code == static_cast<int>(error_code::node_lost) ||
        code == static_cast<int>(error_code::command_not_found)) {
      retry_elsewhere(i, *out.error);
      return;
    }
    complete(i, std::move(out));
    pump();
  });
}

void request_run::remote_lost(std::size_t i, const std::string& url) noexcept {
  guarded([&] {
    if (i < results_.size())
      retry_elsewhere(i, rpc_error(error_code::node_lost, "the link to " + url + " stopped"));
  });
}

// A remote run ended without a result: try another node, or give up.
void request_run::retry_elsewhere(std::size_t i, const rpc_error& why) {
  if (answered_ || results_[i])
    return;
  // A stopping node's own links end their calls: that is a cancellation,
  // not a lost peer, and there is nowhere left to retry.
  if (ctx_->stopping.load()) {
    fail(node_stopping_error());
    return;
  }
  MPREG_LOG(debug, "command '" << req_.cmds[i].name << "' lost its node: " << why.message);
  remote_[i].last_loss = why; // only a remote run is ever lost
  if (why.code != static_cast<int>(error_code::command_not_found))
    remote_[i].node_lost = true;
  start_command(i);
  pump();
}

rpc_error node_stopping_error() {
  return rpc_error(error_code::internal_error, "node is stopping: the request was cancelled");
}

void request_run::stopping() noexcept {
  guarded([&] { fail(node_stopping_error()); });
}

void request_run::deadline() noexcept {
  guarded([&] { expire(); });
}

void request_run::expire() {
  json::array pending;
  for (std::size_t i = 0; i < req_.cmds.size(); ++i)
    if (!results_[i])
      pending.emplace_back(req_.cmds[i].name);
  fail(deadline_error(*req_.timeout, std::move(pending)));
}

bool is_deadline(double timeout) {
  // A timespan (int64 ns) holds ~292 years: converting a longer deadline
  // (1e12 s, 1e300 s) overflows into the past. Past ~31 years: no deadline.
  return timeout > 0 && timeout < 1e9;
}

rpc_error deadline_error(double timeout, json::array pending) {
  // A large request's answer names a sample, not megabytes of names.
  constexpr std::size_t listed = 100;
  json details = json::make_object({{"timeout", timeout}});
  if (pending.size() > listed) {
    details["pending_total"] = static_cast<unsigned long long>(pending.size());
    pending.resize(listed);
  }
  details["pending"] = json{std::move(pending)};
  return rpc_error(error_code::deadline_exceeded,
                   "deadline exceeded after " + json(timeout).dump() + " s", std::move(details));
}

} // namespace mpreg
