// Work handed to an Asio I/O thread by other threads (actors writing
// answers), without asio::post.
//
// asio::post wakes a thread that sleeps in epoll while the poster still holds
// the io_context's mutex: the woken thread blocks on that mutex at once and
// needs a second wake-up when the poster lets go. On a busy core that is two
// extra context switches for every answer an actor writes (perf sched on a
// 3-node chain). Here the poster queues under a lock of its own and writes an
// eventfd only when the I/O thread has said it is about to sleep; an I/O
// thread that is polling (run_io's spin) finds the work with no system call
// on either side.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>

namespace mpreg::transport {

class io_inbox {
public:
  /// Creates the eventfd and starts waiting on it in `io`.
  explicit io_inbox(asio::io_context& io);
  ~io_inbox();
  io_inbox(const io_inbox&) = delete;
  io_inbox& operator=(const io_inbox&) = delete;

  /// Any thread: runs `fn` on the I/O thread, after everything pushed before
  /// it. False when the inbox is closed (fn is dropped).
  bool push(std::function<void()> fn);

  // ---- the I/O thread only ----

  /// Runs what is queued (a throwing function is logged and skipped); true
  /// when something ran.
  bool drain();
  /// Says that the thread is about to block in epoll; false (and nothing
  /// said) when work is already queued, so the caller drains instead.
  bool about_to_sleep();
  /// The thread is awake again.
  void awake() { sleeping_.store(false, std::memory_order_seq_cst); }
  /// Any thread: wakes the I/O thread if it sleeps, for work that arrived
  /// elsewhere (a scheduler queue). No system call when it does not sleep.
  void wake();
  /// Refuses further pushes, runs what is queued, then stops waiting on the
  /// eventfd (so the io_context can run out of work). Also called once the
  /// I/O thread has ended (a forced stop): what it left then runs on the
  /// caller's thread, releasing what the tasks hold.
  void close();

private:
  void wait_for_wake();

  std::mutex m_;
  std::vector<std::function<void()>> queue_; // guarded by m_
  bool closed_ = false;                      // guarded by m_
  std::atomic<bool> queued_{false};          // queue_ is not empty (a hint)
  std::atomic<bool> sleeping_{false};
  int fd_ = -1;
  asio::posix::stream_descriptor wake_;
};

} // namespace mpreg::transport
