// The threads that run registered functions, off the I/O and actor threads,
// so a slow function never stalls routing or other clients.
//
// Elastic: `core` threads stay; while tasks wait and busy threads are
// blocked (they use no CPU), new ones start, up to `max`; threads that
// compute are not replaced, so CPU-bound work keeps `core` threads. Extra
// threads exit after being idle for a while. Tasks past `max` queue, per
// owner (fair_queue.hpp): one connection's flood does not hold up another's.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

namespace mpreg {

class worker_pool {
public:
  worker_pool(std::size_t core, std::size_t max);
  ~worker_pool();
  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;

  /// Queues a task; false once stopping (the task is dropped). Tasks of one
  /// `owner` (a connection, say) start in the order submitted; owners with
  /// tasks waiting take turns, so one owner's flood delays another's task
  /// by one task per waiting owner, not by the whole flood.
  bool submit(std::function<void()> task, const void* owner = nullptr);

  /// Stops taking tasks and waits up to `grace` for running ones; threads
  /// still busy after that (a function that never returns) are detached.
  /// Their requests were answered when the node stopped: the wait only lets
  /// short side effects finish, and keeps exit within a few seconds.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds{1000});

  std::size_t threads() const;

private:
  struct state;
  static void run(std::shared_ptr<state> s, std::uint64_t id);
  static void grow(std::shared_ptr<state> s);
  std::shared_ptr<state> s_;
};

} // namespace mpreg
