// How long an idle I/O loop keeps polling before it sleeps in epoll.
#pragma once

#include <algorithm>
#include <chrono>

namespace mpreg::transport {

/// Sleeping in epoll and being woken can cost a loop far more than the work
/// of a small frame (measured on 2 shared vCPUs: a 3-node chain took twice
/// as long with no polling at all). So after work the loop polls for a
/// while first, and the window adapts to the gaps it sees, like Linux's
/// hybrid block polling and KVM's halt polling: it starts at `base`; a gap
/// up to 4 x `base` long widens it to that gap plus a quarter (a node
/// answering a peer's calls one after another, or waiting for a peer's
/// answer, then catches the next one polling); a gap longer than that
/// halves it, and once it is below `base` / 8 it is 0: a loop whose gaps
/// keep outlasting any window sleeps at once, as if it never polled (on
/// the VM measured, a wake-up soon after going to sleep was also the
/// cheapest). `base` 0 never polls. Used by one thread at a time (the
/// loop's).
class spin_window {
public:
  using duration = std::chrono::steady_clock::duration;

  explicit spin_window(std::chrono::microseconds base)
    : base_(std::max(base, std::chrono::microseconds::zero())),
      max_(base_ * widest_factor), window_(base_) {}

  /// False when it never polls (`base` 0); the window itself may be 0.
  bool enabled() const { return base_.count() > 0; }
  duration window() const { return window_; }

  /// Work showed up after the loop had had none for `gap`.
  void idle_ended(duration gap) {
    if (!enabled())
      return;
    if (gap <= max_) {
      window_ = std::min(max_, std::max(window_, gap + gap / 4));
    } else {
      window_ /= 2;
      if (window_ < base_ / 8)
        window_ = duration::zero();
    }
  }

  static constexpr int widest_factor = 4;

private:
  duration base_;
  duration max_;
  duration window_;
};

} // namespace mpreg::transport
