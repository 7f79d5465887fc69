// The dependency-resolution engine of one request, free of actors: it builds
// the graph, starts each command as soon as the commands it consumes have
// finished (dataflow, no level-by-level barrier), substitutes results,
// enforces the size limits and answers exactly once.
//
// Its host decides where the waiting happens. A job actor hosts it when a
// command runs on the worker pool or on a peer; a session runs it in place
// when every command is an inline function of this node, so such a request
// costs no actor spawn at all (see runs_inline_here).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/timespan.hpp>

#include "jobs/local_call.hpp"
#include "jobs/request_graph.hpp"
#include "mpreg/messages.hpp"
#include "peers/routing_table.hpp"
#include "protocol/codec.hpp"

namespace mpreg {

struct node_context;

/// The answer to a request that a stopping node will not finish (1002).
rpc_error node_stopping_error();

/// Whether a request's `timeout` (seconds) sets a deadline: a positive one
/// below ~31 years (longer ones would overflow a timespan; they never end).
bool is_deadline(double timeout);

/// The answer to a request whose `timeout` (seconds) ran out with the
/// commands named in `pending` unfinished (1007); past 100 names only the
/// first 100 are listed, with "pending_total".
rpc_error deadline_error(double timeout, json::array pending);

class request_run {
public:
  /// Where the run's waiting happens. Every call comes from the run, on the
  /// thread that drives it.
  class host {
  public:
    virtual ~host() = default;
    /// The run's one answer (its `u` is set), for a host that hands the
    /// response over as it is (an in-process caller).
    virtual void answer(response r) = 0;
    /// True for a host that writes the answer to a connection: the run then
    /// encodes it itself and calls answer_frame() instead of answer(). The
    /// size limit is the frame's: an answer whose frame would be over
    /// max_message_size becomes error 1003, whatever the estimates said.
    virtual bool writes_frames() const { return false; }
    virtual void answer_frame(std::string /*frame*/) {}
    /// Runs command i on a peer; the host reports back through
    /// remote_done() or remote_lost().
    virtual void run_remote(std::size_t i, const route& target, protocol::internal_rpc call) = 0;
    /// Runs command i on the worker pool and reports through local_done();
    /// false when the pool refuses (the node is stopping).
    virtual bool run_on_pool(std::size_t i, std::shared_ptr<const local_function> f,
                             json::array args, json::object kwargs) = 0;
    /// Calls deadline() after `after`.
    virtual void arm_deadline(caf::timespan after) = 0;
  };

  /// `inline_only`: every command runs inline on this node (the caller
  /// checked runs_inline_here); the host's waiting calls are never made.
  request_run(std::shared_ptr<node_context> ctx, host& h, bool inline_only = false);
  ~request_run();
  request_run(const request_run&) = delete;
  request_run& operator=(const request_run&) = delete;

  /// True when every command of `req` runs inline on this node: the run
  /// then ends inside start(), with no waiting.
  static bool runs_inline_here(const node_context& ctx, const request& req);

  /// Starts the run; never throws (an internal failure is answered 1002).
  /// `waited`: seconds the request already waited for a slot; its deadline
  /// comes that much sooner (its error still names the full timeout).
  void start(request req, double waited = 0) noexcept;

  // What the host reports. Each is ignored once the run has answered.
  void local_done(std::size_t i, call_outcome out) noexcept;
  void remote_done(std::size_t i, call_outcome out) noexcept;
  void remote_lost(std::size_t i, const std::string& url) noexcept;
  void deadline() noexcept;
  /// The node is stopping: answers error 1002 now, if not answered yet.
  void stopping() noexcept;

  bool answered() const noexcept { return answered_; }

private:
  void begin(request req, double waited);
  void pump();
  void start_command(std::size_t i);
  void run_local(std::size_t i, const std::shared_ptr<const local_function>& f);
  void complete(std::size_t i, call_outcome out);
  void retry_elsewhere(std::size_t i, const rpc_error& why);
  void finish();
  void expire();
  rpc_error response_too_large() const;
  rpc_error shortened(const rpc_error& err) const;
  void fail(rpc_error err);
  void deliver(response resp);
  template <class F>
  void guarded(F&& f) noexcept;
  std::size_t max_size() const;

  std::shared_ptr<node_context> ctx_;
  host& host_;
  bool inline_only_;
  request req_;
  std::optional<request_graph> graph_;
  std::vector<std::optional<json>> results_;
  std::vector<std::size_t> sizes_;      // encoded size estimate of each result
  std::vector<std::size_t> waiting_on_; // unfinished dependencies per command
  std::vector<std::size_t> ready_;      // a queue: ready_[ready_head_..] wait to start
  std::size_t ready_head_ = 0;
  // Per command, made on the first run on a peer (a local run never needs it).
  struct remote_attempts {
    std::vector<std::string> tried;      // peers tried
    std::optional<rpc_error> last_loss;  // why the last one failed
    bool node_lost = false;              // one was lost (not just without the function)
  };
  std::vector<remote_attempts> remote_;
  std::size_t finished_ = 0;
  bool answered_ = false;
  std::optional<std::chrono::steady_clock::time_point> deadline_at_;
};

} // namespace mpreg
