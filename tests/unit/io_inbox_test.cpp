// io_inbox with run_io: work handed to an I/O thread by other threads.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <asio/post.hpp>

#include "transport/io_inbox.hpp"
#include "transport/io_loop.hpp"
#include "transport/spin_window.hpp"

using namespace std::chrono_literals;
using mpreg::transport::io_inbox;

namespace {

// An io_context whose loop runs on its own thread, like the listener's.
struct io_thread {
  asio::io_context io;
  io_inbox inbox{io};
  std::promise<void> ended;
  std::future<void> ended_f = ended.get_future();
  std::thread thread;

  explicit io_thread(std::chrono::microseconds spin) {
    thread = std::thread([this, spin] {
      mpreg::transport::spin_window window{spin};
      mpreg::transport::run_io(io, inbox, window);
      ended.set_value();
    });
  }
  // Closing the inbox (on its thread) leaves the loop out of work: it ends.
  bool close_and_join() {
    asio::post(io, [this] { inbox.close(); });
    bool ended_by_itself = ended_f.wait_for(20s) == std::future_status::ready;
    if (!ended_by_itself)
      io.stop();
    thread.join();
    return ended_by_itself;
  }
};

bool run_and_wait(io_inbox& inbox) {
  std::promise<void> ran;
  auto f = ran.get_future();
  if (!inbox.push([&ran] { ran.set_value(); }))
    return false;
  return f.wait_for(20s) == std::future_status::ready;
}

void check_inbox(std::chrono::microseconds spin) {
  io_thread t{spin};

  SUBCASE("a loop asleep in epoll wakes for each push") {
    for (int i = 0; i < 100; ++i) {
      std::this_thread::sleep_for(2ms); // past the widest spin window: the loop sleeps
      REQUIRE_MESSAGE(run_and_wait(t.inbox), "push " << i << " never ran");
    }
  }
  SUBCASE("ping-pong: each push waits for the one before it to run") {
    // Every push lands while the loop is going to sleep or just asleep: a
    // lost wake-up leaves one waiting, and the bounded wait fails.
    std::mutex m;
    std::condition_variable cv;
    int done = 0;
    for (int i = 1; i <= 20000; ++i) {
      t.inbox.push([&] {
        {
          std::lock_guard<std::mutex> lock(m);
          ++done;
        }
        cv.notify_one();
      });
      std::unique_lock<std::mutex> lock(m);
      REQUIRE_MESSAGE(cv.wait_for(lock, 20s, [&] { return done == i; }), "push " << i << " never ran");
    }
  }
  SUBCASE("the loop still serves its io_context while pushes keep coming") {
    std::atomic<bool> stop{false};
    std::thread pusher([&] {
      while (!stop)
        t.inbox.push([] {});
    });
    std::promise<void> ran;
    asio::post(t.io, [&ran] { ran.set_value(); });
    bool served = ran.get_future().wait_for(20s) == std::future_status::ready;
    stop = true;
    pusher.join();
    CHECK(served);
  }
  SUBCASE("pushes from many threads all run, each thread's in order") {
    constexpr int threads = 4, each = 5000;
    std::vector<std::vector<int>> seen(threads); // touched on the I/O thread only
    std::vector<std::thread> pushers;
    for (int k = 0; k < threads; ++k)
      pushers.emplace_back([&, k] {
        for (int i = 0; i < each; ++i)
          t.inbox.push([&seen, k, i] { seen[k].push_back(i); });
      });
    for (auto& p : pushers)
      p.join();
    REQUIRE(run_and_wait(t.inbox)); // runs after everything pushed before it
    for (int k = 0; k < threads; ++k) {
      REQUIRE(seen[k].size() == static_cast<std::size_t>(each));
      for (int i = 0; i < each; ++i)
        REQUIRE(seen[k][i] == i);
    }
  }
  SUBCASE("a throwing task is skipped; the ones after it run") {
    std::vector<int> order;
    t.inbox.push([&order] { order.push_back(1); });
    t.inbox.push([] { throw std::runtime_error("task failed on purpose"); });
    t.inbox.push([&order] { order.push_back(3); });
    REQUIRE(run_and_wait(t.inbox));
    CHECK(order == std::vector<int>{1, 3});
  }
  CHECK(t.close_and_join());
  CHECK_FALSE(t.inbox.push([] {})); // closed: refused
}

} // namespace

TEST_CASE("io_inbox: a loop that sleeps at once") {
  check_inbox(0us);
}

TEST_CASE("io_inbox: a loop that polls before it sleeps") {
  check_inbox(200us);
}

TEST_CASE("io_inbox: close runs what was pushed before it") {
  asio::io_context io;
  io_inbox inbox{io};
  int ran = 0;
  inbox.push([&ran] { ++ran; });
  inbox.push([&ran] { ++ran; });
  inbox.close(); // no loop runs: close itself runs them
  CHECK(ran == 2);
  CHECK_FALSE(inbox.push([&ran] { ++ran; }));
  io.run(); // returns: nothing is left to wait on
  CHECK(io.stopped());
}

TEST_CASE("spin_window: widens to the gaps it sees, narrows to nothing when they grow") {
  using mpreg::transport::spin_window;
  spin_window w{50us};
  CHECK(w.enabled());
  CHECK(w.window() == 50us);

  w.idle_ended(10us); // caught by the window: nothing to change
  CHECK(w.window() == 50us);
  w.idle_ended(120us); // missed: the next one like it is caught
  CHECK(w.window() == 150us);
  w.idle_ended(20us); // short gaps do not narrow it
  CHECK(w.window() == 150us);
  w.idle_ended(190us); // never wider than 4 x base
  CHECK(w.window() == 200us);

  w.idle_ended(5ms); // traffic grew sparse: halves...
  CHECK(w.window() == 100us);
  for (int i = 0; i < 3; ++i)
    w.idle_ended(5ms);
  CHECK(w.window() == 12500ns);
  w.idle_ended(5ms); // 6.25 us: base / 8 still polls
  CHECK(w.window() == 6250ns);
  w.idle_ended(5ms); // ...and below base / 8 it sleeps at once
  CHECK(w.window() == 0us);
  w.idle_ended(5ms);
  CHECK(w.window() == 0us);
  w.idle_ended(40us); // short gaps again: polls again
  CHECK(w.window() == 50us);

  spin_window off{0us}; // --io-spin-us 0: never polls
  off.idle_ended(10us);
  CHECK_FALSE(off.enabled());
  CHECK(off.window() == 0us);
}
