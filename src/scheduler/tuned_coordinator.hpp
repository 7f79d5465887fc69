// The scheduler mpreg::tune_actor_system installs: CAF's work-stealing
// coordinator with fewer wake-ups, a leaner worker loop, and a first worker
// that can run a node's I/O loop (see the parts' headers).
#pragma once

#include <caf/actor_system.hpp>
#include <caf/detail/type_list.hpp>
#include <caf/scheduler/coordinator.hpp>

#include <mutex>

#include "scheduler/cancel_filter_clock.hpp"
#include "scheduler/wake_once_stealing.hpp"

namespace mpreg::scheduler {

class tuned_coordinator final : public caf::scheduler::coordinator<wake_once_stealing> {
public:
  using super = caf::scheduler::coordinator<wake_once_stealing>;

  explicit tuned_coordinator(caf::actor_system& sys) : super(sys), view_(super::clock()) {}

  /// What actors use; the real clock (and its thread) stays the coordinator's.
  caf::detail::thread_safe_actor_clock& clock() noexcept override { return view_; }

  /// The first worker, as the thread a node's I/O loop may run on.
  transport::loop_runner* io_runner() noexcept { return &data().hosting; }

  /// For actor_system_config::load.
  static caf::actor_system::module* make(caf::actor_system& sys, caf::detail::type_list<>) {
    return new tuned_coordinator(sys);
  }

protected:
  void start() override {
    super::start();
    data().hosting.set_wake_worker([this] {
      auto& wait = worker_by_id(0)->data().waitdata;
      { // under its lock: the worker checks for a hosted loop under it before it sleeps
        std::lock_guard<std::mutex> guard(wait.lock);
      }
      wait.cv.notify_one();
    });
  }

private:
  cancel_filter_clock view_;
};

} // namespace mpreg::scheduler
