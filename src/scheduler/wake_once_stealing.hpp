// CAF's work-stealing scheduler with one change: a sleeping worker is woken
// once per message from a non-actor thread, not twice.
#pragma once

#include <mutex>

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
