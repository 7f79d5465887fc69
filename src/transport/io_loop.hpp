// The I/O loop of the node's Asio threads (the listener and the peer links).
#pragma once

#include <chrono>
#include <thread>

#include <asio/io_context.hpp>

#include "transport/io_inbox.hpp"
#include "transport/spin_window.hpp"

namespace mpreg::transport {

/// Runs `io` (and `inbox`, the work other threads hand over) until it stops.
/// After each burst of handlers it keeps polling for `spin`'s window before
/// it blocks in epoll: an actor's answer to a frame, or a peer's answer to a
/// call, usually follows within tens of microseconds, and finding it by
/// polling spares this thread a sleep and a wake-up through the kernel
/// (spin_window.hpp). Polling yields the CPU between rounds, so other
/// threads on a busy core still run.
inline void run_io(asio::io_context& io, io_inbox& inbox, spin_window& spin) {
  using clock = std::chrono::steady_clock;
  auto last_work = clock::now();
  for (;;) {
    if (io.stopped())
      return;
    if (inbox.drain())
      last_work = clock::now();
    if (!inbox.about_to_sleep()) {
      io.poll(); // work arrived meanwhile; the sockets must not starve
      continue;
    }
    auto ran = io.run_one();
    inbox.awake();
    if (ran == 0)
      return; // stopped, or out of work (the inbox was closed)
    auto now = clock::now();
    spin.idle_ended(now - last_work);
    last_work = now;
    if (!spin.enabled())
      continue;
    while (!io.stopped() && clock::now() - last_work < spin.window()) {
      bool worked = io.poll() > 0;
      if (inbox.drain())
        worked = true;
      if (worked) {
        now = clock::now();
        spin.idle_ended(now - last_work);
        last_work = now;
      } else {
        std::this_thread::yield();
      }
    }
  }
}

} // namespace mpreg::transport
