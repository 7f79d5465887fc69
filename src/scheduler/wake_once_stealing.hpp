// CAF's work-stealing scheduler with three changes: a sleeping worker is
// woken once per message from a non-actor thread, not twice; the worker loop
// no longer names each actor it runs for CAF's (disabled) logger; and the
// first worker can run a node's I/O loop when it has no actor to run
// (io_hosting.hpp).
#pragma once

#include <chrono>
#include <mutex>
#include <thread>

#include <caf/config.hpp>
#include <caf/logger.hpp>
#include <caf/policy/work_stealing.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/coordinator.hpp>
#include <caf/scheduler/worker.hpp>

#include "scheduler/io_hosting.hpp"
#include "util/thread_name.hpp"

namespace mpreg::scheduler {

/// CAF 0.17's work_stealing::external_enqueue signals a sleeping worker's
/// condition variable while it holds that worker's mutex. The worker wakes,
/// blocks on the mutex at once and must be woken a second time when the
/// enqueuer lets go: on a busy core, two extra context switches for every
/// message that arrives from a socket thread (seen with perf sched on a
/// 3-node chain). This policy signals after unlocking. No wake-up is lost:
/// the job is queued before the mutex is taken, and the worker sets
/// `sleeping` and checks its queue under that mutex before it waits.
class wake_once_stealing : public caf::policy::work_stealing {
public:
  struct coordinator_data : caf::policy::work_stealing::coordinator_data {
    explicit coordinator_data(caf::scheduler::abstract_coordinator* p)
      : caf::policy::work_stealing::coordinator_data(p) {}
    io_hosting hosting;
  };

  template <class Worker>
  void external_enqueue(Worker* self, caf::resumable* job) {
    auto& data = d(self);
    data.queue.append(job);
    if (self->id() == 0) // pairs with io_host::wait: it sees the job or is woken
      self->parent()->data().hosting.wake_if_hosted();
    bool sleeping;
    {
      std::lock_guard<std::mutex> guard(data.waitdata.lock);
      sleeping = data.waitdata.sleeping;
    }
    if (sleeping)
      data.waitdata.cv.notify_one();
  }

  /// An actor scheduled from a worker (a message sent or an actor spawned
  /// by the actor it runs) goes to the back of that worker's queue. CAF
  /// 0.17 puts it at the front, for cache locality; then the jobs a session
  /// spawns for one read burst of requests started last-first, and with
  /// more calls than pool threads the first request sent was answered last.
  template <class Worker>
  void internal_enqueue(Worker* self, caf::resumable* job) {
    d(self).queue.append(job);
  }

  /// The first worker runs the hosted loop while its queue is empty; the
  /// others (and it, when nothing is hosted) wait as CAF's workers do.
  template <class Worker>
  caf::resumable* dequeue(Worker* self) {
    if (self->id() == 0) {
      auto& hosting = self->parent()->data().hosting;
      auto h = hosting.hosted();
      if (h != nullptr && !named_) {
        util::name_this_thread("mpreg.io+actors");
        named_ = true;
      } else if (h == nullptr && named_) {
        util::name_this_thread("caf.multiplexer"); // CAF's own name for its workers
        named_ = false;
      }
      if (h != nullptr && hosting.enter(*h)) {
        auto job = hosted_dequeue(self, hosting, *h);
        hosting.leave();
        if (job)
          return job;
      }
      return first_worker_dequeue(self, hosting);
    }
    return caf::policy::work_stealing::dequeue(self);
  }

  template <class Worker>
  void before_shutdown(Worker* self) {
    if (self->id() == 0) {
      // The worker ends before the node: its loop moves to a thread.
      if (auto h = self->parent()->data().hosting.close())
        h->to_own_thread();
    }
    caf::policy::work_stealing::before_shutdown(self);
  }

private:
  // Jobs run between two looks at the sockets while actors stay busy: I/O
  // must not starve behind a long queue.
  static constexpr unsigned jobs_per_io_poll = 16;

  template <class Worker>
  caf::resumable* hosted_dequeue(Worker* self, io_hosting& hosting, transport::io_host& h) {
    using clock = std::chrono::steady_clock;
    auto& queue = d(self).queue;
    auto& spin = h.spin();
    auto last_work = clock::now();
    bool idle = false; // nothing found since last_work
    for (;;) {
      if (auto job = queue.take_head()) {
        if (idle)
          spin.idle_ended(clock::now() - last_work);
        if (++jobs_since_poll_ >= jobs_per_io_poll) {
          jobs_since_poll_ = 0;
          h.poll();
        }
        return job;
      }
      jobs_since_poll_ = 0;
      if (hosting.hosted() != &h)
        return nullptr; // released: back to CAF's wait
      if (h.poll()) {
        auto now = clock::now();
        if (idle)
          spin.idle_ended(now - last_work);
        last_work = now;
        idle = false;
        continue;
      }
      idle = true;
      // Like run_io: poll a little longer before sleeping (spin_window).
      if (spin.enabled() && clock::now() - last_work < spin.window()) {
        std::this_thread::yield();
        continue;
      }
      h.wait([&] { return !queue.empty() || hosting.hosted() != &h; });
    }
  }

  // CAF's dequeue (policy/work_stealing.hpp), except that its sleep also
  // ends when a loop is handed to this worker: a job queued to wake it
  // could be stolen by another worker, leaving this one asleep.
  template <class Worker>
  caf::resumable* first_worker_dequeue(Worker* self, io_hosting& hosting) {
    auto& data = d(self);
    auto& strategies = data.strategies;
    for (size_t k = 0; k < 2; ++k) {
      for (size_t i = 0; i < strategies[k].attempts; i += strategies[k].step_size) {
        if (auto job = data.queue.take_head())
          return job;
        if (hosting.hosted())
          return dequeue(self);
        if (i % strategies[k].steal_interval == 0)
          if (auto job = try_steal(self))
            return job;
        if (strategies[k].sleep_duration.count() > 0)
          std::this_thread::sleep_for(strategies[k].sleep_duration);
      }
    }
    auto& relaxed = strategies[2];
    auto& wait = data.waitdata;
    for (size_t i = 1;; ++i) {
      bool woken;
      {
        std::unique_lock<std::mutex> guard(wait.lock);
        wait.sleeping = true;
        woken = wait.cv.wait_for(guard, relaxed.sleep_duration, [&] {
          return !data.queue.empty() || hosting.hosted() != nullptr;
        });
        wait.sleeping = false;
      }
      if (hosting.hosted())
        return dequeue(self);
      caf::resumable* job = nullptr;
      if (woken)
        job = data.queue.take_head();
      else if (i % relaxed.steal_interval == 0)
        job = try_steal(self);
      if (job)
        return job;
    }
  }

  unsigned jobs_since_poll_ = 0; // first worker only
  bool named_ = false;           // first worker only
};

} // namespace mpreg::scheduler

static_assert(CAF_VERSION == 1706, "worker<wake_once_stealing>::run copies CAF 0.17.6's "
                                   "scheduler/worker.hpp: check it against this version");

/// CAF 0.17.6's worker loop without one line: CAF_PUSH_AID_FROM_PTR, which
/// names the actor about to run for CAF's logger on every resume, even with
/// Debian's libcaf built with logging off (CAF_LOG_LEVEL_QUIET). It costs a
/// dynamic_cast from resumable to abstract_actor (a sideways cast across
/// CAF's multiple inheritance, about 1,100 instructions per resume) and two
/// logger calls: 6.5 % of the entry node's instructions in a 3-node chain
/// (callgrind). scheduled_actor::resume still names the actor it runs. The
/// rest is CAF's loop, unchanged.
template <>
inline void caf::scheduler::worker<mpreg::scheduler::wake_once_stealing>::run() {
  CAF_SET_LOGGER_SYS(&system());
  for (;;) {
    auto job = policy_.dequeue(this);
    policy_.before_resume(this, job);
    auto res = job->resume(this, max_throughput_);
    policy_.after_resume(this, job);
    switch (res) {
      case resumable::resume_later:
        // keep reference to this actor, as it remains in the "loop"
        policy_.resume_job_later(this, job);
        break;
      case resumable::done:
        policy_.after_completion(this, job);
        intrusive_ptr_release(job);
        break;
      case resumable::awaiting_message:
        // resumable will maybe be enqueued again later, deref it for now
        intrusive_ptr_release(job);
        break;
      case resumable::shutdown_execution_unit:
        policy_.after_completion(this, job);
        policy_.before_shutdown(this);
        return;
    }
  }
}
