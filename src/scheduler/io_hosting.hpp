// The tuned scheduler's first worker as a node's I/O thread: it runs the
// node's Asio loop whenever it has no actor to run.
//
// Why: with the loop on a thread of its own, every request crossed threads
// twice per node (socket thread -> actor thread -> socket thread), and a
// forwarded call four times more. Each crossing is a wake-up through the
// kernel; at one request in flight those wake-ups and their context
// switches were most of the CPU a request cost. With the loop on the worker,
// a frame read there is handled by actors queued there and answered there:
// no crossing at all on a 2-core machine (one worker). With more workers,
// actors still spread over all of them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "transport/io_host.hpp"

namespace mpreg::scheduler {

/// What the coordinator keeps about the loop its first worker runs.
class io_hosting final : public transport::loop_runner {
public:
  /// Set once the workers exist: wakes the first worker if it sleeps.
  void set_wake_worker(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(m_);
    wake_worker_ = std::move(fn);
  }

  bool host(transport::io_host& h) override {
    {
      std::lock_guard<std::mutex> lock(m_);
      if (hosted_.load() || !wake_worker_ || closed_)
        return false;
      hosted_.store(&h, std::memory_order_release);
    }
    wake_worker_(); // it may be asleep in its wait for jobs
    return true;
  }

  void release(transport::io_host& h) override {
    std::unique_lock<std::mutex> lock(m_);
    if (hosted_.load() != &h)
      return;
    hosted_.store(nullptr, std::memory_order_seq_cst);
    // An enqueuer that read the old pointer may still be waking it.
    while (waking_.load(std::memory_order_seq_cst) != 0)
      std::this_thread::yield();
    // On the worker's own thread it is between two jobs, not in the loop.
    if (std::this_thread::get_id() != worker_thread_) {
      h.wake();
      cv_.wait(lock, [this] { return !in_loop_; });
    }
    h.leave_loop();
  }

  /// Any thread, after queueing a job to the first worker: wakes it if it
  /// sleeps in the hosted loop. Safe against a concurrent release (which
  /// waits for it), so the loop it wakes is never gone.
  void wake_if_hosted() {
    waking_.fetch_add(1, std::memory_order_seq_cst);
    if (auto h = hosted_.load(std::memory_order_seq_cst))
      h->wake();
    waking_.fetch_sub(1, std::memory_order_seq_cst);
  }

  // ---- the first worker ----

  transport::io_host* hosted() const { return hosted_.load(std::memory_order_acquire); }

  /// Before the worker touches `h`: false when it was released meanwhile.
  bool enter(transport::io_host& h) {
    std::lock_guard<std::mutex> lock(m_);
    if (hosted_.load() != &h)
      return false;
    in_loop_ = true;
    worker_thread_ = std::this_thread::get_id();
    h.enter_loop();
    return true;
  }

  /// The worker is ending (the actor system stops): it hosts nothing more.
  /// Returns what it hosted, if anything, for the caller to move elsewhere.
  transport::io_host* close() {
    std::lock_guard<std::mutex> lock(m_);
    closed_ = true;
    return hosted_.load();
  }

  /// After it: a release waiting for the worker may go on.
  void leave() {
    {
      std::lock_guard<std::mutex> lock(m_);
      in_loop_ = false;
    }
    cv_.notify_all();
  }

private:
  std::mutex m_;
  std::condition_variable cv_;
  std::atomic<transport::io_host*> hosted_{nullptr};
  std::atomic<int> waking_{0}; // wake_if_hosted calls under way
  bool in_loop_ = false;             // guarded by m_
  bool closed_ = false;              // guarded by m_
  std::thread::id worker_thread_{};  // guarded by m_
  std::function<void()> wake_worker_; // guarded by m_
};

} // namespace mpreg::scheduler
