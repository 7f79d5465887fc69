#include <algorithm>
#include <cstddef>

#include <caf/actor_system_config.hpp>

#include "mpreg/node.hpp"
#include "scheduler/tuned_coordinator.hpp"
#include "util/cpus.hpp"

namespace mpreg {

void tune_actor_system(caf::actor_system_config& cfg) {
  // The WebSocket I/O thread is busy whenever actors are: it gets a core of
  // its own and the actors the rest (user functions run on the worker pool,
  // not here). On 2 cores a second actor thread only added wake-ups and
  // cache traffic: 12 % more CPU per request (bench/run, docs/PERFORMANCE.md).
  auto cores = util::usable_cpus(); // a cgroup quota included
  cfg.set("scheduler.max-threads", static_cast<std::size_t>(std::max(1u, cores - 1)));
  // Work-stealing workers that find no work spin briefly, then (by default)
  // poll 500 times with 50 us sleeps before sleeping on a condition variable.
  // A message arriving during those sleeps waits for the sleep to end, which
  // is most of a request's latency at low load; skipping that phase sends idle
  // workers straight to the condition variable, where an enqueue wakes them.
  cfg.set("work-stealing.moderate-poll-attempts", std::size_t{0});
  // CAF lets an actor run as long as its mailbox has messages. The first
  // worker also runs the node's I/O loop (io_hosting.hpp): an actor that is
  // fed as fast as it works would keep the sockets waiting. After this many
  // messages it goes to the back of the queue, behind the I/O.
  cfg.set("scheduler.max-throughput", std::size_t{64});
  // Work-stealing with fewer wake-ups: one per message from a non-actor
  // thread instead of two, and a worker loop without CAF's per-resume logger
  // bookkeeping (wake_once_stealing.hpp); none of the clock thread when an
  // actor without timeouts exits (cancel_filter_clock.hpp). Its settings are
  // work-stealing's.
  cfg.load<scheduler::tuned_coordinator>();
}

} // namespace mpreg
