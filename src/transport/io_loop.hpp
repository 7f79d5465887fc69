// The I/O loop of the node's Asio threads (the listener and the peer links).
#pragma once

#include <chrono>
#include <thread>

#include <asio/io_context.hpp>

#include "transport/io_inbox.hpp"

namespace mpreg::transport {

/// Runs `io` (and `inbox`, the work other threads hand over) until it stops.
/// After each burst of handlers it keeps polling for `spin` before it blocks
/// in epoll: an actor's answer to a frame usually follows within tens of
/// microseconds, and finding it by polling spares this thread a sleep and a
/// wake-up through the kernel (measured: a third of a small request's
/// latency). Polling yields the CPU between rounds, so other threads on a
/// busy core still run. `spin` 0 blocks at once.
inline void run_io(asio::io_context& io, io_inbox& inbox, std::chrono::microseconds spin) {
  using clock = std::chrono::steady_clock;
  for (;;) {
    if (io.stopped())
      return;
    inbox.drain();
    if (!inbox.about_to_sleep()) {
      io.poll(); // work arrived meanwhile; the sockets must not starve
      continue;
    }
    auto ran = io.run_one();
    inbox.awake();
    if (ran == 0)
      return; // stopped, or out of work (the inbox was closed)
    if (spin.count() <= 0)
      continue;
    auto until = clock::now() + spin;
    while (!io.stopped() && clock::now() < until) {
      bool worked = io.poll() > 0;
      if (inbox.drain())
        worked = true;
      if (worked)
        until = clock::now() + spin;
      else
        std::this_thread::yield();
    }
  }
}

} // namespace mpreg::transport
