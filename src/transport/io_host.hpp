// One Asio I/O loop and the thread that runs it: a thread of its own, or a
// scheduler thread that runs actors and I/O in turn (a loop_runner).
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include <asio/io_context.hpp>

#include "transport/io_inbox.hpp"
#include "transport/spin_window.hpp"

namespace mpreg::transport {

class io_host;

/// A thread that can run an io_host's loop between its other work (the
/// tuned scheduler's first worker, scheduler/io_hosting.hpp).
class loop_runner {
public:
  virtual ~loop_runner() = default;
  /// Starts running `host`'s loop; false when this runner already runs one.
  virtual bool host(io_host& host) = 0;
  /// Stops running it: when this returns, the runner no longer touches the
  /// loop. Called on the runner's own thread, between two of its jobs, it
  /// returns at once.
  virtual void release(io_host& host) = 0;
};

/// The loop every endpoint of one node (or of one client) shares: its
/// io_context, and the inbox through which other threads hand it work.
/// Handlers run on one thread at a time. Lifetime rules: stop() the loop
/// before destroying the websocketpp endpoints that use it, and keep the
/// io_host alive (shared_ptr) as long as any socket or timer of it exists.
class io_host {
public:
  /// `thread_name` names the thread of its own when it has one; `spin` is
  /// the base of how long the loop polls before it sleeps (spin_window).
  io_host(std::string thread_name, std::chrono::microseconds spin);
  /// Stops the loop (stop()).
  ~io_host();
  io_host(const io_host&) = delete;
  io_host& operator=(const io_host&) = delete;

  asio::io_context& io() { return io_; }
  io_inbox& inbox() { return inbox_; }
  /// How long the loop polls before it sleeps: for the thread running it.
  spin_window& spin() { return spin_; }

  /// Starts the loop on `runner` when it takes it, else on a thread of its
  /// own. Once.
  void start(loop_runner* runner = nullptr);
  /// Moves a hosted loop onto a thread of its own, so the caller may block
  /// waiting for I/O even on the runner's thread (a node stopping). No-op
  /// when it has its own thread already.
  void to_own_thread();
  /// Ends the loop for good: no handler runs after this returns (except
  /// what the inbox still held, run here). Idempotent; not on the loop.
  void stop();

  /// True on the thread running the loop now.
  bool on_loop_thread() const { return std::this_thread::get_id() == loop_thread_.load(); }
  /// True while a runner, not a thread of its own, runs the loop.
  bool hosted() const { return hosted_.load(); }
  /// False once stop() has begun.
  bool running() const { return !stopping_.load(); }

  // ---- for the loop_runner, on its thread ----

  /// The runner's thread takes (or gives up) the loop.
  void enter_loop() { loop_thread_ = std::this_thread::get_id(); }
  void leave_loop() { loop_thread_ = std::thread::id{}; }
  /// Runs queued inbox work and up to max_handlers_per_poll ready handlers,
  /// without blocking; true when anything ran. A handler that throws is
  /// logged (here and in wait), never passed on to the runner.
  bool poll();
  /// Blocks in epoll until I/O, inbox work or wake(); returns at once when
  /// `has_other_work` is true once the loop has said it sleeps (checked
  /// after that, so a wake() in between is never lost). A template: the
  /// runner's check is called in place, never wrapped in a std::function.
  template <class F>
  void wait(F&& has_other_work) {
    if (!about_to_block())
      return;
    if (has_other_work()) {
      inbox_.awake();
      return;
    }
    block();
  }
  /// Any thread: ends a wait() (cheap when the loop is not waiting).
  void wake() { inbox_.wake(); }

  static constexpr int max_handlers_per_poll = 64;

private:
  // wait's halves: say the loop sleeps (false when work is queued or it is
  // stopping), then block in epoll until woken.
  bool about_to_block();
  void block();
  void run_own_thread();

  asio::io_context io_;
  io_inbox inbox_;
  std::string thread_name_;
  spin_window spin_; // used by the thread running the loop
  std::mutex m_; // start, to_own_thread and stop
  loop_runner* runner_ = nullptr; // guarded by m_
  std::thread thread_;             // guarded by m_
  std::atomic<bool> hosted_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<std::thread::id> loop_thread_{};
};

} // namespace mpreg::transport
