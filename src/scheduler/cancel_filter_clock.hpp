// The actor clock as actors see it, minus one needless wake-up per actor exit.
#pragma once

#include <mutex>
#include <unordered_set>

#include <caf/actor_clock.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>

namespace mpreg::scheduler {

/// Every CAF 0.17 actor cancels its timeouts when it exits, and the
/// thread-safe clock turns each cancel into a command for the clock thread:
/// up to two wake-ups of that thread (it signals under its lock) per actor
/// exit, even for an actor that never set a timeout. A request that waits on
/// the pool or a peer has a job actor, so that was one clock wake-up per
/// such request. This view forwards everything to the real clock but skips
/// cancel_timeouts for actors that never set a timeout (delayed messages are
/// not timeouts: the real clock does not cancel those either).
///
/// It derives from thread_safe_actor_clock only because the coordinator's
/// clock() must return one; its own queue is never used.
class cancel_filter_clock final : public caf::detail::thread_safe_actor_clock {
public:
  explicit cancel_filter_clock(caf::actor_clock& real) : real_(real) {}

  time_point now() const noexcept override { return real_.now(); }
  duration_type difference(caf::atom_value measurement, long units, time_point t0,
                           time_point t1) const noexcept override {
    return real_.difference(measurement, units, t0, t1);
  }

  void set_ordinary_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                            uint64_t id) override {
    note(self);
    real_.set_ordinary_timeout(t, self, type, id);
  }
  void set_multi_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                         uint64_t id) override {
    note(self);
    real_.set_multi_timeout(t, self, type, id);
  }
  void set_request_timeout(time_point t, caf::abstract_actor* self,
                           caf::message_id id) override {
    note(self);
    real_.set_request_timeout(t, self, id);
  }
  void cancel_ordinary_timeout(caf::abstract_actor* self, caf::atom_value type) override {
    real_.cancel_ordinary_timeout(self, type);
  }
  void cancel_request_timeout(caf::abstract_actor* self, caf::message_id id) override {
    real_.cancel_request_timeout(self, id);
  }
  void cancel_timeouts(caf::abstract_actor* self) override {
    if (forget(self))
      real_.cancel_timeouts(self);
  }
  void schedule_message(time_point t, caf::strong_actor_ptr receiver,
                        caf::mailbox_element_ptr content) override {
    real_.schedule_message(t, std::move(receiver), std::move(content));
  }
  void schedule_message(time_point t, caf::group target, caf::strong_actor_ptr sender,
                        caf::message content) override {
    real_.schedule_message(t, std::move(target), std::move(sender), std::move(content));
  }
  void cancel_all() override { real_.cancel_all(); }

private:
  void note(caf::abstract_actor* self) {
    std::lock_guard<std::mutex> lock(m_);
    with_timeouts_.insert(self);
  }
  // True when `self` ever set a timeout; it is forgotten (an actor cancels
  // all its timeouts once, when it exits, before its address can be reused).
  bool forget(caf::abstract_actor* self) {
    std::lock_guard<std::mutex> lock(m_);
    return with_timeouts_.erase(self) > 0;
  }

  caf::actor_clock& real_;
  std::mutex m_;
  std::unordered_set<caf::abstract_actor*> with_timeouts_;
};

} // namespace mpreg::scheduler
