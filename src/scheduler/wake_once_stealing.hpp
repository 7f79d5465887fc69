// CAF's work-stealing scheduler with two changes: a sleeping worker is woken
// once per message from a non-actor thread, not twice; and the worker loop
// no longer names each actor it runs for CAF's (disabled) logger.
#pragma once

#include <mutex>

#include <caf/config.hpp>
#include <caf/logger.hpp>
#include <caf/policy/work_stealing.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/coordinator.hpp>
#include <caf/scheduler/worker.hpp>

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
  template <class Worker>
  void external_enqueue(Worker* self, caf::resumable* job) {
    auto& data = d(self);
    data.queue.append(job);
    bool sleeping;
    {
      std::lock_guard<std::mutex> guard(data.waitdata.lock);
      sleeping = data.waitdata.sleeping;
    }
    if (sleeping)
      data.waitdata.cv.notify_one();
  }
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
