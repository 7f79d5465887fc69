// tune_actor_system and its wake-once scheduler (src/scheduler/).
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "mpreg/node.hpp"
#include "scheduler/wake_once_stealing.hpp"

using namespace std::chrono_literals;

namespace {

// Counts the ints it receives; the test thread waits on the count.
struct counted {
  std::mutex m;
  std::condition_variable cv;
  int seen = 0;

  bool wait_for_count(int n) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, 20s, [&] { return seen >= n; });
  }
};

caf::behavior counter(caf::event_based_actor*, counted* c) {
  return {[c](int) {
    {
      std::lock_guard<std::mutex> lock(c->m);
      ++c->seen;
    }
    c->cv.notify_all();
  }};
}

} // namespace

TEST_CASE("tune_actor_system installs the wake-once work-stealing scheduler") {
  caf::actor_system_config cfg;
  mpreg::tune_actor_system(cfg);
  caf::actor_system sys{cfg};
  CHECK(dynamic_cast<mpreg::scheduler::wake_once_coordinator*>(&sys.scheduler()) != nullptr);
  auto cores = std::max(1u, std::thread::hardware_concurrency());
  CHECK(sys.scheduler().num_workers() == std::max(1u, cores - 1));
}

TEST_CASE("a sleeping scheduler thread wakes for every message from a non-actor thread") {
  // Idle workers wait a minute between checks of their queue: a lost wake-up
  // would leave a message there far longer than the bounded waits below.
  caf::actor_system_config cfg;
  mpreg::tune_actor_system(cfg);
  cfg.set("scheduler.max-threads", std::size_t{2});
  cfg.set("work-stealing.relaxed-sleep-duration", caf::timespan{std::chrono::minutes(1)});
  caf::actor_system sys{cfg};
  counted c;
  auto target = sys.spawn(counter, &c);

  SUBCASE("one message at a time, the workers asleep before each") {
    for (int i = 1; i <= 100; ++i) {
      std::this_thread::sleep_for(1ms); // long enough for the workers to go to sleep
      caf::anon_send(target, i);
      REQUIRE_MESSAGE(c.wait_for_count(i), "message " << i << " was not delivered");
    }
  }
  SUBCASE("ping-pong: each message waits for the one before it") {
    // Each message arrives while the worker is going to sleep or just
    // asleep: a lost wake-up leaves it in the mailbox for the minute.
    for (int i = 1; i <= 20000; ++i) {
      caf::anon_send(target, i);
      REQUIRE_MESSAGE(c.wait_for_count(i), "message " << i << " was not delivered");
    }
  }
  SUBCASE("many threads at once") {
    constexpr int threads = 4, each = 5000;
    std::vector<std::thread> senders;
    for (int t = 0; t < threads; ++t)
      senders.emplace_back([&] {
        for (int i = 0; i < each; ++i)
          caf::anon_send(target, i);
      });
    for (auto& s : senders)
      s.join();
    CHECK(c.wait_for_count(threads * each));
  }
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
}
