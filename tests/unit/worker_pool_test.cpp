// worker_pool (src/jobs/worker_pool.hpp): runs every task, grows under
// blocking load up to its maximum, queues past it, stops bounded.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "jobs/fair_queue.hpp"
#include "jobs/worker_pool.hpp"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// Polls `pred` until it holds or `limit` passes.
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = 5000ms) {
  auto end = steady::now() + limit;
  while (!pred()) {
    if (steady::now() > end)
      return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A gate tasks block on until the test opens it.
struct gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> l(m);
      open = true;
    }
    cv.notify_all();
  }
};

} // namespace

TEST_CASE("worker_pool: runs every task exactly once") {
  mpreg::worker_pool pool(2, 8);
  constexpr int n = 5000;
  std::atomic<int> done{0};
  std::atomic<long> sum{0};
  for (int i = 0; i < n; ++i)
    REQUIRE(pool.submit([&, i] {
      sum += i;
      ++done;
    }));
  REQUIRE(eventually([&] { return done.load() == n; }));
  CHECK(sum.load() == static_cast<long>(n) * (n - 1) / 2);
  pool.stop();
  CHECK(done.load() == n);
}

TEST_CASE("worker_pool: tasks run off the submitting thread, on several threads") {
  mpreg::worker_pool pool(4, 4);
  gate g;
  std::mutex m;
  std::set<std::thread::id> ids;
  std::atomic<int> started{0};
  for (int i = 0; i < 4; ++i)
    pool.submit([&] {
      {
        std::lock_guard<std::mutex> l(m);
        ids.insert(std::this_thread::get_id());
      }
      ++started;
      g.wait(); // all four must be running at once
    });
  REQUIRE(eventually([&] { return started.load() == 4; }));
  g.release();
  pool.stop();
  CHECK(ids.size() == 4);
  CHECK(ids.count(std::this_thread::get_id()) == 0);
}

TEST_CASE("worker_pool: grows past its core when every thread blocks, up to max") {
  mpreg::worker_pool pool(2, 6);
  CHECK(pool.threads() == 2);
  gate g;
  std::atomic<int> running{0};
  std::atomic<int> done{0};
  for (int i = 0; i < 10; ++i)
    pool.submit([&] {
      ++running;
      g.wait();
      --running;
      ++done;
    });
  // Six run at once (the maximum); the other four wait in the queue.
  REQUIRE(eventually([&] { return running.load() == 6; }));
  std::this_thread::sleep_for(50ms);
  CHECK(running.load() == 6);
  CHECK(pool.threads() == 6);
  g.release();
  REQUIRE(eventually([&] { return done.load() == 10; }));
  pool.stop();
}

TEST_CASE("worker_pool: computing tasks do not grow the pool; blocked ones do") {
  mpreg::worker_pool pool(2, 64);
  std::atomic<int> done{0};
  // 40 tasks of 20 ms of CPU each: the two core threads compute all along,
  // so no thread is added (the old pool started one per waiting task).
  for (int i = 0; i < 40; ++i)
    pool.submit([&] {
      auto end = steady::now() + 20ms;
      while (steady::now() < end) {
      }
      ++done;
    });
  std::size_t most = 0;
  while (done.load() < 40) {
    most = std::max(most, pool.threads());
    std::this_thread::sleep_for(1ms);
  }
  MESSAGE("threads at most " << most << " for 40 computing tasks");
  CHECK(most <= 6); // 2, plus slack for a machine too busy to run them
  // Blocked tasks get threads of their own.
  gate g;
  std::atomic<int> running{0};
  for (int i = 0; i < 20; ++i)
    pool.submit([&] {
      ++running;
      g.wait();
    });
  CHECK(eventually([&] { return running.load() == 20; }));
  g.release();
  pool.stop();
}

TEST_CASE("worker_pool: a blocked task does not hold up later short ones") {
  mpreg::worker_pool pool(1, 4);
  gate g;
  std::atomic<bool> quick{false};
  pool.submit([&] { g.wait(); });
  pool.submit([&] { quick = true; });
  CHECK(eventually([&] { return quick.load(); }, 3000ms));
  g.release();
  pool.stop();
}

TEST_CASE("worker_pool: a throwing task is the task's business, not the pool's") {
  // Tasks are documented to catch their own exceptions; the node's tasks do.
  // The pool still works after many tasks that caught.
  mpreg::worker_pool pool(2, 2);
  std::atomic<int> caught{0};
  for (int i = 0; i < 100; ++i)
    pool.submit([&] {
      try {
        throw std::runtime_error("x");
      } catch (const std::exception&) {
        ++caught;
      }
    });
  CHECK(eventually([&] { return caught.load() == 100; }));
}

TEST_CASE("worker_pool: submit after stop is refused") {
  mpreg::worker_pool pool(2, 2);
  pool.stop();
  std::atomic<bool> ran{false};
  CHECK_FALSE(pool.submit([&] { ran = true; }));
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(ran.load());
  pool.stop(); // idempotent
  CHECK(pool.threads() == 0);
}

TEST_CASE("worker_pool: stop waits for running tasks and drops queued ones") {
  mpreg::worker_pool pool(1, 1);
  std::atomic<bool> first_started{false}, first_done{false}, second_ran{false};
  pool.submit([&] {
    first_started = true;
    std::this_thread::sleep_for(200ms);
    first_done = true;
  });
  pool.submit([&] { second_ran = true; });
  REQUIRE(eventually([&] { return first_started.load(); }));
  pool.stop(2000ms);
  CHECK(first_done.load()); // stop waited for it
  CHECK_FALSE(second_ran.load());
  CHECK(pool.threads() == 0);
}

TEST_CASE("worker_pool: stop is bounded by its grace when a task never returns") {
  auto g = std::make_shared<gate>();
  std::atomic<bool> started{false};
  auto t0 = steady::now();
  {
    mpreg::worker_pool pool(1, 2);
    pool.submit([g, &started] {
      started = true;
      g->wait();
    });
    REQUIRE(eventually([&] { return started.load(); }));
    pool.stop(100ms);
    CHECK(steady::now() - t0 < 2s);
  } // the destructor does not wait again
  CHECK(steady::now() - t0 < 3s);
  g->release(); // let the detached thread finish
  std::this_thread::sleep_for(20ms);
}

TEST_CASE("worker_pool: many threads submitting at once") {
  mpreg::worker_pool pool(2, 16);
  std::atomic<int> done{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < 4; ++t)
    submitters.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        pool.submit([&] { ++done; });
    });
  for (auto& t : submitters)
    t.join();
  CHECK(eventually([&] { return done.load() == 4000; }));
  pool.stop();
  CHECK(pool.threads() == 0);
}

TEST_CASE("worker_pool: owners with tasks waiting take turns, each in its own order") {
  mpreg::worker_pool pool(1, 1); // one thread, no growth: a queue forms
  gate g;
  int flood = 0, other = 0; // owner keys
  std::mutex m;
  std::vector<std::string> ran;
  auto record = [&](std::string name) {
    return [&, name] {
      std::lock_guard<std::mutex> l(m);
      ran.push_back(name);
    };
  };
  std::atomic<bool> started{false};
  pool.submit([&] { started = true; g.wait(); }, &flood); // holds the one thread
  REQUIRE(eventually([&] { return started.load(); }));
  for (int i = 1; i <= 4; ++i)
    pool.submit(record("flood" + std::to_string(i)), &flood);
  pool.submit(record("other1"), &other);
  pool.submit(record("other2"), &other);
  g.release();
  REQUIRE(eventually([&] {
    std::lock_guard<std::mutex> l(m);
    return ran.size() == 6;
  }));
  // First come, first served would have run the whole flood first.
  CHECK(ran == std::vector<std::string>{"flood1", "other1", "flood2", "other2", "flood3", "flood4"});
  pool.stop();
}

TEST_CASE("fair_queue: round-robin over owners, empty owners forgotten") {
  mpreg::fair_queue q;
  int a = 0, b = 0;
  std::vector<int> out;
  for (int i = 0; i < 3; ++i)
    q.push(&a, [&out, i] { out.push_back(i); });
  q.push(&b, [&out] { out.push_back(10); });
  CHECK(q.size() == 4);
  while (!q.empty())
    q.pop()();
  CHECK(out == std::vector<int>{0, 10, 1, 2});
  q.push(&b, [&out] { out.push_back(11); }); // b had left the turns: back in
  q.push(&a, [&out] { out.push_back(3); });
  q.pop()();
  q.clear();
  CHECK(q.empty());
  CHECK(out.back() == 11);
}
