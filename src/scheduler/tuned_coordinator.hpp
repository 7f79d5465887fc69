// The scheduler mpreg::tune_actor_system installs: CAF's work-stealing
// coordinator with fewer wake-ups and a leaner worker loop (see the two
// parts' headers).
#pragma once

#include <caf/actor_system.hpp>
#include <caf/detail/type_list.hpp>
#include <caf/scheduler/coordinator.hpp>

#include "scheduler/cancel_filter_clock.hpp"
#include "scheduler/wake_once_stealing.hpp"

namespace mpreg::scheduler {

class tuned_coordinator final : public caf::scheduler::coordinator<wake_once_stealing> {
public:
  using super = caf::scheduler::coordinator<wake_once_stealing>;

  explicit tuned_coordinator(caf::actor_system& sys) : super(sys), view_(super::clock()) {}

  /// What actors use; the real clock (and its thread) stays the coordinator's.
  caf::detail::thread_safe_actor_clock& clock() noexcept override { return view_; }

  /// For actor_system_config::load.
  static caf::actor_system::module* make(caf::actor_system& sys, caf::detail::type_list<>) {
    return new tuned_coordinator(sys);
  }

private:
  cancel_filter_clock view_;
};

} // namespace mpreg::scheduler
