// tune_actor_system and its wake-once scheduler (src/scheduler/).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "mpreg/node.hpp"
#include "scheduler/tuned_coordinator.hpp"
#include "transport/io_host.hpp"
#include "util/cpus.hpp"

#include <pthread.h>

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

TEST_CASE("tune_actor_system installs the tuned work-stealing scheduler") {
  caf::actor_system_config cfg;
  mpreg::tune_actor_system(cfg);
  caf::actor_system sys{cfg};
  CHECK(dynamic_cast<mpreg::scheduler::tuned_coordinator*>(&sys.scheduler()) != nullptr);
  auto cores = mpreg::util::usable_cpus(); // affinity mask and cgroup quota
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

namespace {

// Counts what reaches the real clock.
struct recording_clock final : caf::actor_clock {
  int set = 0;
  int cancels = 0;
  void set_ordinary_timeout(time_point, caf::abstract_actor*, caf::atom_value, uint64_t) override {
    ++set;
  }
  void set_multi_timeout(time_point, caf::abstract_actor*, caf::atom_value, uint64_t) override {
    ++set;
  }
  void set_request_timeout(time_point, caf::abstract_actor*, caf::message_id) override { ++set; }
  void cancel_ordinary_timeout(caf::abstract_actor*, caf::atom_value) override {}
  void cancel_request_timeout(caf::abstract_actor*, caf::message_id) override {}
  void cancel_timeouts(caf::abstract_actor*) override { ++cancels; }
  void schedule_message(time_point, caf::strong_actor_ptr, caf::mailbox_element_ptr) override {}
  void schedule_message(time_point, caf::group, caf::strong_actor_ptr, caf::message) override {}
  void cancel_all() override {}
};

} // namespace

TEST_CASE("the clock view passes an exiting actor's cancel on only if it set a timeout") {
  recording_clock real;
  mpreg::scheduler::cancel_filter_clock view{real};
  // Stand-ins for two actors: the view only compares their addresses.
  int a_obj = 0, b_obj = 0;
  auto* a = reinterpret_cast<caf::abstract_actor*>(&a_obj);
  auto* b = reinterpret_cast<caf::abstract_actor*>(&b_obj);

  view.set_request_timeout(view.now(), a, caf::make_message_id());
  CHECK(real.set == 1);
  view.cancel_timeouts(b); // never set one: the clock thread is left alone
  CHECK(real.cancels == 0);
  view.cancel_timeouts(a);
  CHECK(real.cancels == 1);
  view.cancel_timeouts(a); // forgotten after its exit
  CHECK(real.cancels == 1);
  view.set_ordinary_timeout(view.now(), b, caf::atom("x"), 1);
  view.cancel_timeouts(b);
  CHECK(real.cancels == 2);
}

TEST_CASE("timeouts still fire under the tuned scheduler") {
  caf::actor_system_config cfg;
  mpreg::tune_actor_system(cfg);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};

  SUBCASE("a request to an actor that never answers times out") {
    auto silent = sys.spawn([](caf::event_based_actor* s) -> caf::behavior {
      return {[s](int) { return s->make_response_promise(); }};
    });
    bool timed_out = false;
    self->request(silent, std::chrono::milliseconds(50), 1)
      .receive([](caf::response_promise&) {},
               [&](caf::error& e) { timed_out = e == caf::sec::request_timeout; });
    CHECK(timed_out);
    caf::anon_send_exit(silent, caf::exit_reason::user_shutdown);
  }
  SUBCASE("an idle timeout fires, and a delayed message arrives") {
    auto idle = sys.spawn([](caf::event_based_actor* s, caf::actor reply_to) -> caf::behavior {
      s->delayed_send(reply_to, std::chrono::milliseconds(10), std::string("delayed"));
      return {[](int) {},
              caf::after(std::chrono::milliseconds(20)) >> [s, reply_to] {
                s->send(reply_to, std::string("idle"));
                s->quit();
              }};
    }, caf::actor{self});
    std::vector<std::string> got;
    for (int i = 0; i < 2; ++i)
      self->receive([&](std::string& what) { got.push_back(what); },
                    caf::after(std::chrono::seconds(20)) >> [] {});
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<std::string>{"delayed", "idle"});
  }
}

// ---------------------------------------------------------- the hosted loop

namespace {

std::string this_thread_name() {
  char buf[16] = {};
  pthread_getname_np(pthread_self(), buf, sizeof buf);
  return buf;
}

// Runs fn on `h`'s loop and returns the name of the thread it ran on ("" when
// the loop did not run it within 20 s).
std::string loop_thread_name(mpreg::transport::io_host& h) {
  std::promise<std::string> name;
  auto got = name.get_future();
  if (!h.inbox().push([&name] { name.set_value(this_thread_name()); }))
    return "";
  if (got.wait_for(20s) != std::future_status::ready)
    return "";
  return got.get();
}

caf::actor_system_config& tuned(caf::actor_system_config& cfg, std::size_t workers) {
  mpreg::tune_actor_system(cfg);
  cfg.set("scheduler.max-threads", workers);
  // A lost wake-up would leave work waiting for a minute, far beyond the waits here.
  cfg.set("work-stealing.relaxed-sleep-duration", caf::timespan{std::chrono::minutes(1)});
  return cfg;
}

mpreg::transport::loop_runner* runner_of(caf::actor_system& sys) {
  return dynamic_cast<mpreg::scheduler::tuned_coordinator&>(sys.scheduler()).io_runner();
}

} // namespace

TEST_CASE("the first worker runs one hosted loop; another loop gets a thread") {
  caf::actor_system_config cfg;
  caf::actor_system sys{tuned(cfg, 2)};
  mpreg::transport::io_host a{"test.a", 0us}, b{"test.b", 0us};
  a.start(runner_of(sys));
  b.start(runner_of(sys)); // the worker is taken
  CHECK(a.hosted());
  CHECK_FALSE(b.hosted());
  CHECK(loop_thread_name(a) == "mpreg.io+actors");
  CHECK(loop_thread_name(b) == "test.b");
  // Moved off the worker (a node stopping), it runs on a thread of its own.
  a.to_own_thread();
  CHECK_FALSE(a.hosted());
  CHECK(loop_thread_name(a) == "test.a");
  a.stop();
  CHECK_FALSE(a.inbox().push([] {}));
  // The worker is free again, and CAF's name is back once it runs a job.
  mpreg::transport::io_host c{"test.c", 0us};
  c.start(runner_of(sys));
  CHECK(c.hosted());
  CHECK(loop_thread_name(c) == "mpreg.io+actors");
}

TEST_CASE("a worker that hosts the loop wakes for actors and for I/O alike") {
  caf::actor_system_config cfg;
  caf::actor_system sys{tuned(cfg, 1)}; // one worker: every actor shares it with the loop
  mpreg::transport::io_host h{"test.io", 0us};
  h.start(runner_of(sys));
  REQUIRE(h.hosted());
  counted c;
  auto target = sys.spawn(counter, &c);

  SUBCASE("messages from another thread, each after the worker went to sleep in epoll") {
    for (int i = 1; i <= 2000; ++i) {
      if (i % 100 == 0)
        std::this_thread::sleep_for(1ms);
      caf::anon_send(target, i);
      REQUIRE_MESSAGE(c.wait_for_count(i), "message " << i << " was not delivered");
    }
  }
  SUBCASE("work handed to the loop from another thread, between messages") {
    for (int i = 1; i <= 2000; ++i) {
      std::promise<void> ran;
      REQUIRE(h.inbox().push([&ran] { ran.set_value(); }));
      REQUIRE(ran.get_future().wait_for(20s) == std::future_status::ready);
      caf::anon_send(target, i);
      REQUIRE(c.wait_for_count(i));
    }
  }
  SUBCASE("a busy actor does not starve the loop") {
    // An actor that keeps sending itself messages never empties the queue.
    // It shares the flag: it may still run a message after this scope ends.
    auto stop = std::make_shared<std::atomic<bool>>(false);
    auto busy = sys.spawn([stop](caf::event_based_actor* s) -> caf::behavior {
      s->send(s, 0);
      return {[s, stop](int) {
        if (!*stop)
          s->send(s, 0);
      }};
    });
    for (int i = 0; i < 100; ++i) {
      std::promise<void> ran;
      REQUIRE(h.inbox().push([&ran] { ran.set_value(); }));
      REQUIRE(ran.get_future().wait_for(20s) == std::future_status::ready);
    }
    *stop = true;
    caf::anon_send_exit(busy, caf::exit_reason::user_shutdown);
  }
  // Taken back from another thread while the worker sleeps in epoll: prompt.
  std::this_thread::sleep_for(5ms);
  auto t0 = std::chrono::steady_clock::now();
  h.stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  int before;
  {
    std::lock_guard<std::mutex> lock(c.m);
    before = c.seen;
  }
  caf::anon_send(target, 0);
  CHECK(c.wait_for_count(before + 1)); // the worker still runs actors
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
}

TEST_CASE("a hosted loop outlives the actor system on a thread of its own") {
  auto h = std::make_unique<mpreg::transport::io_host>("test.after", 0us);
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{tuned(cfg, 1)};
    h->start(runner_of(sys));
    CHECK(h->hosted());
    CHECK(loop_thread_name(*h) == "mpreg.io+actors");
  } // the worker ends first
  CHECK_FALSE(h->hosted());
  CHECK(loop_thread_name(*h) == "test.after");
  h->stop();
}
