// Asks several actors the same question and acts once every one of them has
// answered or failed (error, timeout, already gone). CAF 0.17 has no
// fan_out_request; the node's stop asks its sessions, and each session its
// jobs, this way.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

#include <caf/error.hpp>
#include <caf/timespan.hpp>

namespace mpreg::util {

/// Sends `question` as a request to each of `targets` (handles that reply
/// bool), each bounded by `timeout`, and calls `done()` once all have ended;
/// at once when there are none.
template <class Self, class Handles, class Question, class Done>
void ask_all(Self* self, const Handles& targets, caf::timespan timeout, Question question,
             Done done) {
  if (targets.empty()) {
    done();
    return;
  }
  auto left = std::make_shared<std::size_t>(targets.size());
  auto one_ended = [left, done = std::move(done)]() mutable {
    if (--*left == 0)
      done();
  };
  for (const auto& target : targets)
    self->request(target, timeout, question)
      .then([one_ended](bool) mutable { one_ended(); },
            [one_ended](caf::error&) mutable { one_ended(); });
}

} // namespace mpreg::util
