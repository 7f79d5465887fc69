// A node embedded in a CAF actor system, called in-process: mpreg::request to
// node.handle(), mpreg::response back (no WebSocket on the call path).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "mpreg/error.hpp"
#include "mpreg/log.hpp"
#include "mpreg/node.hpp"

using namespace std::chrono_literals;
using mpreg::json;
using steady = std::chrono::steady_clock;

namespace {

caf::actor_system_config& make_config(caf::actor_system_config& cfg) {
  mpreg::tune_actor_system(cfg); // the scheduler mpreg-node runs
  cfg.set("scheduler.max-threads", std::size_t{2});
  return cfg;
}

// One actor system per test, two scheduler threads (the machine has two cores).
struct system_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{make_config(cfg)};
};

mpreg::command C(std::string name, std::string fun, const char* args = "[]",
                 const char* kwargs = "{}", std::vector<std::string> locs = {}) {
  mpreg::command c;
  c.name = std::move(name);
  c.fun = std::move(fun);
  c.args = json::parse(args).as_array();
  c.kwargs = json::parse(kwargs).as_object();
  c.locs = std::move(locs);
  return c;
}

mpreg::request R(std::string u, std::vector<mpreg::command> cmds,
                 std::optional<double> timeout = std::nullopt) {
  mpreg::request r;
  r.u = std::move(u);
  r.cmds = std::move(cmds);
  r.timeout = timeout;
  return r;
}

// Sends one request and waits (bounded) for its response.
mpreg::response call(caf::actor_system& sys, const mpreg::node& n, mpreg::request req,
                     std::chrono::milliseconds limit = 10000ms) {
  caf::scoped_actor self{sys};
  mpreg::response out;
  bool got = false;
  std::string why;
  self->request(n.handle(), limit, std::move(req))
    .receive(
      [&](mpreg::response& r) {
        out = std::move(r);
        got = true;
      },
      [&](caf::error& e) { why = sys.render(e); });
  if (!got)
    FAIL("no response: " << why);
  return out;
}

json ok(const mpreg::response& r) {
  if (!r.ok())
    FAIL("error " << r.error->code << ": " << r.error->message);
  REQUIRE(r.r.has_value());
  return *r.r;
}

mpreg::rpc_error err(const mpreg::response& r) {
  REQUIRE_FALSE(r.ok());
  CHECK_FALSE(r.r.has_value());
  return *r.error;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

mpreg::settings test_settings(std::string name = "inproc") {
  mpreg::settings s;
  s.port = 0;
  s.name = std::move(name);
  s.worker_threads = 4;
  return s;
}

void add_test_functions(mpreg::node& n) {
  mpreg::function_options ab;
  ab.params = {"a", "b"};
  n.add_function("add", [](long long a, long long b) { return a + b; }, ab);
  n.add_function("inc", [](long long x) { return x + 1; });
  n.add_function("sleep_ms", [](int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
  });
  n.add_function("fail", [](const std::string& m) -> int { throw std::runtime_error(m); });
  n.add_function("fail_details", [](const std::string& m) -> int {
    throw mpreg::call_error(m, json::make_object({{"reason", m}}));
  });
  n.add_raw_function("show", [](const json::array& args, const json::object& kwargs) {
    return json::make_object({{"args", json(args)}, {"kwargs", json(kwargs)}});
  });
  n.add_function("big", [](std::size_t len) { return std::string(len, 'x'); });
}

} // namespace

TEST_CASE_FIXTURE(system_fixture, "in-process: typed, raw and built-in functions answer") {
  {
    mpreg::node n{sys, test_settings()};
    add_test_functions(n);
    auto url = n.start();
    CHECK(url.rfind("ws://127.0.0.1:", 0) == 0);
    CHECK(n.url() == url);
    CHECK(n.config().port != 0);
    CHECK(url == "ws://127.0.0.1:" + std::to_string(n.config().port));
    REQUIRE_FALSE(n.config().advertised_urls.empty());
    CHECK(n.config().advertised_urls[0] == url);

    auto names = n.functions();
    for (auto f : {"add", "big", "echo", "echos", "fail", "inc", "show", "sleep_ms"})
      CHECK(std::find(names.begin(), names.end(), f) != names.end());

    auto r = call(sys, n, R("u-1", {C("|s", "add", "[2, 40]")}));
    CHECK(r.u == "u-1");
    CHECK(ok(r) == json::parse(R"({"|s": 42})"));
    CHECK(ok(call(sys, n, R("u-2", {C("|s", "add", "[]", R"({"b": 1, "a": 2})")}))) ==
          json::parse(R"({"|s": 3})"));
    CHECK(ok(call(sys, n, R("u-3", {C("|r", "show", R"([1, "x"])", R"({"k": [true]})")}))) ==
          json::parse(R"({"|r": {"args": [1, "x"], "kwargs": {"k": [true]}}})"));
    CHECK(ok(call(sys, n, R("u-4", {C("|e", "echo", R"([{"a": [1, null]}])")}))) ==
          json::parse(R"({"|e": {"a": [1, null]}})"));
    CHECK(ok(call(sys, n, R("u-5", {C("|e", "echo", "[]", R"({"arg": "kw"})")}))) ==
          json::parse(R"({"|e": "kw"})"));
    CHECK(ok(call(sys, n, R("u-6", {C("|e", "echos", R"([1, "two", [3]])")}))) ==
          json::parse(R"({"|e": [1, "two", [3]]})"));
    n.stop();
  }
}

TEST_CASE_FIXTURE(system_fixture, "in-process: README requests give exactly the sinks") {
  mpreg::node n{sys, test_settings()};
  n.start();
  auto r = call(sys, n,
                R("readme", {C("|first", "echo", R"(["hi there!"])"),
                             C("|second", "echo", R"(["|first"])"),
                             C("|third", "echos", R"(["|first", "AND ME TOO"])")}));
  CHECK(ok(r) ==
        json::parse(R"({"|second": "hi there!", "|third": ["hi there!", "AND ME TOO"]})"));
  r = call(sys, n,
           R("3-1", {C("|first", "echo", R"(["hi there!"])"), C("|second", "echo", R"(["|first"])"),
                     C("|third", "echos", R"(["|first", "|second", "AND ME TOO"])")}));
  CHECK(ok(r) == json::parse(R"({"|third": ["hi there!", "hi there!", "AND ME TOO"]})"));
  r = call(sys, n,
           R("4-1", {C("|first", "echo", R"(["hi there!"])"), C("|second", "echo", R"(["|first"])"),
                     C("|third", "echos", R"(["|first", "|second", "AND ME TOO"])"),
                     C("|4th", "echo", R"(["|third"])")}));
  CHECK(ok(r) == json::parse(R"({"|4th": ["hi there!", "hi there!", "AND ME TOO"]})"));
  // MPREG's call("echo", "echo"): the own name is a literal.
  CHECK(ok(call(sys, n, R("self", {C("echo", "echo", R"(["echo"])")}))) ==
        json::parse(R"({"echo": "echo"})"));
}

TEST_CASE_FIXTURE(system_fixture, "in-process: chains and fan-in with user functions") {
  mpreg::node n{sys, test_settings()};
  add_test_functions(n);
  // A chain listed backwards: |c consumes |b consumes |a.
  auto r = call(sys, n,
                R("chain", {C("|c", "inc", R"(["|b"])"), C("|b", "inc", R"(["|a"])"),
                            C("|a", "add", "[1, 2]")}));
  CHECK(ok(r) == json::parse(R"({"|c": 5})"));
  // Fan-in through nested kwargs.
  r = call(sys, n,
           R("fan", {C("|x", "inc", "[1]"), C("|y", "inc", "[2]"),
                     C("|z", "show", R"(["|x"])", R"({"nested": {"list": ["|y", "|x"]}})")}));
  CHECK(ok(r) == json::parse(R"({"|z": {"args": [2], "kwargs": {"nested": {"list": [3, 2]}}}})"));
}

TEST_CASE_FIXTURE(system_fixture, "in-process: errors are responses with the right codes") {
  mpreg::node n{sys, test_settings()};
  add_test_functions(n);
  n.start();

  auto e = err(call(sys, n, R("e1", {C("|a", "nope", "[1]")})));
  CHECK(e.code == 1001);
  CHECK(contains(e.message, "nope"));

  e = err(call(sys, n, R("e2", {C("|a", "add", "[1]")})));
  CHECK(e.code == 1003);
  CHECK(contains(e.message, "add"));
  CHECK(contains(e.message, "argument 2"));

  e = err(call(sys, n, R("e3", {C("|a", "add", R"([1, "x"])")})));
  CHECK(e.code == 1003);
  CHECK(contains(e.message, "add"));
  CHECK(contains(e.message, "argument 2 ('b')"));

  e = err(call(sys, n, R("e4", {C("|ok", "echo", "[1]"), C("|a", "fail", R"(["boom"])")})));
  CHECK(e.code == 1003);
  CHECK(contains(e.message, "boom"));
  REQUIRE(e.details.is_object());
  CHECK(*e.details.find("command") == json("|a"));
  CHECK(*e.details.find("function") == json("fail"));

  e = err(call(sys, n, R("e5", {C("|a", "fail_details", R"(["why"])")})));
  CHECK(e.code == 1003);
  CHECK(contains(e.message, "why"));
  CHECK(contains(e.details.dump(), R"("reason":"why")"));

  e = err(call(sys, n, R("e6", {C("|a", "echo", R"(["|b"])"), C("|b", "echo", R"(["|a"])")})));
  CHECK(e.code == 1006);
  CHECK(contains(e.message, "cycle"));

  e = err(call(sys, n, R("e7", {C("|a", "echo", "[1]"), C("|a", "echo", "[2]")})));
  CHECK(e.code == 1006);
  CHECK(contains(e.message, "|a"));

  e = err(call(sys, n, R("e8", {})));
  CHECK(e.code == 1006);

  e = err(call(sys, n, R("e9", {C("|a", "echo", "[1]", "{}", {"no-such-resource"})})));
  CHECK(e.code == 1001);

  // A failing producer fails the request; its consumer never runs.
  e = err(call(sys, n, R("e10", {C("|a", "fail", R"(["first"])"), C("|b", "inc", R"(["|a"])")})));
  CHECK(e.code == 1003);
  CHECK(*e.details.find("command") == json("|a"));

  // Still serving.
  CHECK(ok(call(sys, n, R("after", {C("|a", "inc", "[0]")}))) == json::parse(R"({"|a": 1})"));
}

TEST_CASE_FIXTURE(system_fixture, "in-process: independent commands run in parallel") {
  mpreg::node n{sys, test_settings()};
  add_test_functions(n);
  auto t0 = steady::now();
  auto r = call(sys, n,
                R("par", {C("|a", "sleep_ms", "[400]"), C("|b", "sleep_ms", "[400]"),
                          C("|c", "sleep_ms", "[400]"), C("|d", "echos", R"(["|a", "|b", "|c"])")}));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count();
  CHECK(ok(r) == json::parse(R"({"|d": [400, 400, 400]})"));
  CHECK(ms >= 400);
  CHECK(ms < 1000); // serial would take 1200 ms
}

TEST_CASE_FIXTURE(system_fixture, "in-process: the deadline answers 1007 while a function runs") {
  mpreg::node n{sys, test_settings()};
  add_test_functions(n);
  auto t0 = steady::now();
  auto e = err(call(sys, n, R("late", {C("|s", "sleep_ms", "[3000]")}, 0.2)));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count();
  CHECK(e.code == 1007);
  CHECK(ms >= 150);
  CHECK(ms < 1000);
  REQUIRE(e.details.find("pending") != nullptr);
  CHECK(*e.details.find("pending") == json::parse(R"(["|s"])"));
  // A generous deadline does not get in the way.
  CHECK(ok(call(sys, n, R("fine", {C("|s", "sleep_ms", "[10]")}, 5.0))) ==
        json::parse(R"({"|s": 10})"));
}

TEST_CASE_FIXTURE(system_fixture, "in-process: timeouts that are not positive are 1006; huge ones never fire") {
  mpreg::node n{sys, test_settings()};
  add_test_functions(n);
  for (double t : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN(),
                   -std::numeric_limits<double>::infinity()}) {
    CAPTURE(t);
    auto e = err(call(sys, n, R("bad-timeout", {C("|a", "echo", "[1]")}, t)));
    CHECK(e.code == 1006);
    CHECK(contains(e.message, "timeout"));
  }
  for (double t : {1e9, 1e12, 1e300, std::numeric_limits<double>::max(),
                   std::numeric_limits<double>::infinity()}) {
    CAPTURE(t);
    CHECK(ok(call(sys, n, R("long", {C("|s", "sleep_ms", "[20]")}, t))) ==
          json::parse(R"({"|s": 20})"));
  }
}

TEST_CASE_FIXTURE(system_fixture, "in-process: results over max_message_size fail with 1003") {
  auto s = test_settings();
  s.max_message_size = 4096;
  mpreg::node n{sys, s};
  add_test_functions(n);
  // One result too large.
  auto e = err(call(sys, n, R("big", {C("|b", "big", "[10000]")})));
  CHECK(e.code == 1003);
  CHECK(contains(e.message, "result too large"));
  CHECK(contains(e.message, "|b"));
  // Amplification: each step doubles; 20 steps would be 2^20 copies.
  std::vector<mpreg::command> cmds{C("s0", "echo", R"(["0123456789abcdef"])")};
  for (int i = 1; i <= 20; ++i) {
    auto prev = "\"s" + std::to_string(i - 1) + "\"";
    cmds.push_back(C("s" + std::to_string(i), "echos", ("[" + prev + ", " + prev + "]").c_str()));
  }
  e = err(call(sys, n, R("amp", std::move(cmds))));
  CHECK(e.code == 1003);
  CHECK(contains(e.message, "result too large"));
  // One result referenced many times by one command: refused before it is built.
  std::string refs;
  for (int i = 0; i < 200; ++i)
    refs += i ? ",\"|a\"" : "\"|a\"";
  e = err(call(sys, n, R("fan", {C("|a", "big", "[3000]"), C("|b", "echos", ("[" + refs + "]").c_str())})));
  CHECK(e.code == 1003);
  CHECK(contains(e.message, "result too large"));
  CHECK(contains(e.message, "|b"));
  CHECK(*e.details.find("command") == json("|b"));
  // Below the limit is fine.
  CHECK(ok(call(sys, n, R("small", {C("|b", "big", "[1000]")}))).find("|b")->as_string().size() ==
        1000);
  // The sum of the sinks counts too.
  e = err(call(sys, n, R("sum", {C("|a", "big", "[1500]"), C("|b", "big", "[1500]"),
                                 C("|c", "big", "[1500]")})));
  CHECK(e.code == 1003);
  CHECK(contains(e.message, "result too large"));
}

TEST_CASE_FIXTURE(system_fixture, "in-process: requests before start, functions added after start") {
  mpreg::node n{sys, test_settings()};
  // Not started: the in-process handle still answers.
  CHECK(ok(call(sys, n, R("pre", {C("|a", "echo", "[1]")}))) == json::parse(R"({"|a": 1})"));
  n.start();
  CHECK(err(call(sys, n, R("x", {C("|a", "late_fn", "[]")}))).code == 1001);
  n.add_function("late_fn", [] { return std::string("here"); });
  CHECK(ok(call(sys, n, R("y", {C("|a", "late_fn", "[]")}))) == json::parse(R"({"|a": "here"})"));
  // Replacing a function takes effect.
  n.add_function("late_fn", [] { return std::string("replaced"); });
  CHECK(ok(call(sys, n, R("z", {C("|a", "late_fn", "[]")}))) ==
        json::parse(R"({"|a": "replaced"})"));
  // start() twice returns the same URL; stop() twice is harmless.
  auto url = n.url();
  CHECK(n.start() == url);
  n.stop();
  n.stop();
  CHECK_THROWS_AS(n.add_raw_function("", [](const json::array&, const json::object&) { return json(); }),
                  std::invalid_argument);
  CHECK_THROWS_AS(n.add_raw_function("empty", mpreg::raw_function{}), std::invalid_argument);
}

TEST_CASE_FIXTURE(system_fixture, "in-process: function resources and node resources gate locs") {
  auto s = test_settings();
  s.resources = {"dataset-1", "model-a"};
  mpreg::node n{sys, s};
  mpreg::function_options gpu;
  gpu.resources = {"gpu"};
  n.add_function("train", [](int x) { return x * 2; }, gpu);
  CHECK(ok(call(sys, n, R("a", {C("|t", "train", "[2]", "{}", {"gpu", "dataset-1"})}))) ==
        json::parse(R"({"|t": 4})"));
  CHECK(ok(call(sys, n, R("b", {C("|t", "train", "[2]", "{}", {})}))) ==
        json::parse(R"({"|t": 4})"));
  CHECK(ok(call(sys, n, R("c", {C("|e", "echo", "[1]", "{}", {"dataset-1", "model-a"})}))) ==
        json::parse(R"({"|e": 1})"));
  auto e = err(call(sys, n, R("d", {C("|e", "echo", "[1]", "{}", {"gpu"})})));
  CHECK(e.code == 1001); // gpu belongs to train, not to echo
  e = err(call(sys, n, R("e", {C("|t", "train", "[1]", "{}", {"gpu", "dataset-2"})})));
  CHECK(e.code == 1001);
}

TEST_CASE_FIXTURE(system_fixture, "in-process: 300 requests in flight from one actor") {
  mpreg::node n{sys, test_settings()};
  add_test_functions(n);
  caf::scoped_actor self{sys};
  constexpr int count = 300;
  using handle_type = decltype(self->request(n.handle(), 20s, mpreg::request{}));
  std::vector<handle_type> pending;
  // Every request is sent before any answer is read.
  for (int i = 0; i < count; ++i)
    pending.push_back(self->request(n.handle(), 20s,
                                    R("m-" + std::to_string(i),
                                      {C("|a", "inc", ("[" + std::to_string(i) + "]").c_str()),
                                       C("|b", i % 2 ? "inc" : "echo", R"(["|a"])")})));
  int answered = 0;
  for (int i = 0; i < count; ++i)
    pending[static_cast<std::size_t>(i)].receive(
      [&, i](mpreg::response& r) {
        ++answered;
        CHECK(r.u == "m-" + std::to_string(i));
        CHECK(ok(r) == json::make_object({{"|b", i + 1 + (i % 2)}}));
      },
      [&](caf::error& e) { FAIL(sys.render(e)); });
  CHECK(answered == count);
}

TEST_CASE_FIXTURE(system_fixture, "in-process: concurrent callers from several threads") {
  mpreg::node n{sys, test_settings()};
  add_test_functions(n);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      caf::scoped_actor self{sys};
      for (int i = 0; i < 50; ++i) {
        auto u = "t" + std::to_string(t) + "-" + std::to_string(i);
        self->request(n.handle(), 20s, R(u, {C("|x", "add", ("[" + std::to_string(t) + ", " +
                                                            std::to_string(i) + "]").c_str())}))
          .receive(
            [&](mpreg::response& r) {
              if (r.u == u && r.ok() && *r.r == json::make_object({{"|x", t + i}}))
                ++good;
            },
            [](caf::error&) {});
      }
    });
  for (auto& th : threads)
    th.join();
  CHECK(good.load() == 200);
}

TEST_CASE_FIXTURE(system_fixture, "in-process: two nodes in one actor system") {
  {
    mpreg::node a{sys, test_settings("node-a")};
    mpreg::node b{sys, test_settings("node-b")};
    a.add_function("only_a", [] { return std::string("a"); });
    b.add_function("only_b", [] { return std::string("b"); });
    auto ua = a.start();
    auto ub = b.start();
    CHECK(ua != ub);
    CHECK(a.config().port != b.config().port);
    CHECK(a.config().name == "node-a");
    CHECK(b.config().name == "node-b");
    CHECK(ok(call(sys, a, R("1", {C("|x", "only_a")}))) == json::parse(R"({"|x": "a"})"));
    CHECK(ok(call(sys, b, R("2", {C("|x", "only_b")}))) == json::parse(R"({"|x": "b"})"));
    // Not linked: each node has only its own functions.
    CHECK(err(call(sys, a, R("3", {C("|x", "only_b")}))).code == 1001);
    CHECK(err(call(sys, b, R("4", {C("|x", "only_a")}))).code == 1001);
    a.stop();
    // b keeps working after a stopped.
    CHECK(ok(call(sys, b, R("5", {C("|x", "echo", "[5]")}))) == json::parse(R"({"|x": 5})"));
  } // destroyed (b first, then a) before the actor system
}

TEST_CASE_FIXTURE(system_fixture, "in-process: a node started again after stop() links to its peers again") {
  mpreg::node a{sys, test_settings("node-a")};
  a.add_function("only_a", [] { return std::string("a"); });
  auto ua = a.start();
  auto s = test_settings("node-b");
  s.peers = {ua};
  mpreg::node b{sys, s};
  b.start();
  auto peered = [&] {
    auto deadline = steady::now() + 10s;
    while (steady::now() < deadline && b.peers() != std::vector<std::string>{ua})
      std::this_thread::sleep_for(10ms);
    return b.peers() == std::vector<std::string>{ua};
  };
  CHECK(peered());
  CHECK(a.peers() == std::vector<std::string>{b.url()});
  auto routed = [&](const char* u) {
    auto deadline = steady::now() + 10s;
    while (steady::now() < deadline) {
      auto r = call(sys, b, R(u, {C("|x", "only_a")}));
      if (!r.error)
        return *r.r == json::parse(R"({"|x": "a"})");
      std::this_thread::sleep_for(20ms);
    }
    return false;
  };
  CHECK(routed("1"));
  b.stop();
  CHECK(b.peers().empty());
  b.start(); // its GOODBYE left the cluster; starting again rejoins it
  CHECK(routed("2"));
}

TEST_CASE_FIXTURE(system_fixture, "in-process: bad settings throw invalid_argument naming the field") {
  auto s = test_settings("bad");
  s.port = 87841; // would bind 22305 if truncated to 16 bits
  try {
    mpreg::node n{sys, s};
    FAIL("constructed");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("settings.port") == 0);
  }
  s = test_settings("bad");
  s.gossip_interval = 0;
  CHECK_THROWS_AS(mpreg::node(sys, s), std::invalid_argument);
  // URLs take the command line's normal form: one seed, one key.
  s = test_settings("urls");
  s.peers = {"WS://127.0.01:1/"};
  s.connect = " ";
  mpreg::node n{sys, s};
  CHECK(n.config().peers == std::vector<std::string>{"ws://127.0.0.1:1"});
  CHECK(n.config().connect.empty());
}

TEST_CASE_FIXTURE(system_fixture, "in-process: log lines go to a sink, filtered by the level") {
  std::mutex m;
  std::vector<std::pair<mpreg::log_level, std::string>> lines;
  mpreg::set_log_sink([&](mpreg::log_level l, std::string_view line) {
    std::lock_guard g{m};
    lines.emplace_back(l, std::string(line));
  });
  {
    mpreg::node n{sys, test_settings("logged")};
    auto url = n.start();
    n.stop();
    std::lock_guard g{m};
    auto listening = std::find_if(lines.begin(), lines.end(), [&](const auto& l) {
      return l.first == mpreg::log_level::info && l.second.find("listening on " + url) != std::string::npos;
    });
    CHECK(listening != lines.end());
    lines.clear();
  }
  mpreg::set_log_level(mpreg::log_level::warn);
  {
    mpreg::node n{sys, test_settings("quiet")};
    n.start();
    n.stop();
  }
  mpreg::set_log_level(mpreg::log_level::info);
  mpreg::set_log_sink(nullptr);
  std::lock_guard g{m};
  CHECK(lines.empty()); // nothing at warn or above, info filtered out
}

TEST_CASE_FIXTURE(system_fixture, "in-process: start on a port in use throws, the node stays usable") {
  mpreg::node a{sys, test_settings("a")};
  a.start();
  auto s = test_settings("b");
  s.port = a.config().port;
  mpreg::node b{sys, s};
  CHECK_THROWS_AS(b.start(), std::runtime_error);
  CHECK(b.url().empty());
  CHECK(ok(call(sys, b, R("1", {C("|x", "echo", "[1]")}))) == json::parse(R"({"|x": 1})"));
  // Once a is gone its port can be taken.
  a.stop();
  auto deadline = steady::now() + 5s;
  std::string url;
  while (url.empty() && steady::now() < deadline) {
    try {
      url = b.start();
    } catch (const std::runtime_error&) {
      std::this_thread::sleep_for(50ms);
    }
  }
  CHECK(url == "ws://127.0.0.1:" + std::to_string(s.port));
}

TEST_CASE("in-process: a node destroyed with a request still running shuts down promptly") {
  auto t0 = steady::now();
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{make_config(cfg)};
    mpreg::node n{sys, test_settings()};
    add_test_functions(n);
    n.start();
    caf::scoped_actor self{sys};
    auto pending = self->request(n.handle(), 10s, R("pending", {C("|s", "sleep_ms", "[1000]")}));
    (void)pending;
    std::this_thread::sleep_for(50ms); // let it reach the pool
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count();
  CHECK(ms < 5000);
}

TEST_CASE("in-process: a node destroyed with calls queued on its pool answers every request") {
  // CPU-bound calls (the pool adds no threads for them) fill the pool's
  // threads; the rest wait in its queue when the node goes. Each request
  // must still be answered (queued calls: 1002), or its job would wait for
  // ever and hang the actor system's destructor.
  auto t0 = steady::now();
  caf::actor_system_config cfg;
  caf::actor_system sys{make_config(cfg)};
  caf::scoped_actor self{sys};
  const int calls = 8;
  std::atomic<int> started{0};
  using handle = decltype(self->request(std::declval<mpreg::node&>().handle(), 10s,
                                        std::declval<mpreg::request>()));
  std::vector<handle> pending;
  {
    auto s = test_settings();
    s.worker_threads = 2;
    mpreg::node n{sys, s};
    n.add_function("spin_ms", [&started](int ms) {
      ++started;
      auto until = steady::now() + std::chrono::milliseconds(ms);
      while (steady::now() < until) {
      }
      return ms;
    });
    n.start();
    for (int i = 0; i < calls; ++i)
      pending.push_back(self->request(n.handle(), 10s,
                                      R("q" + std::to_string(i), {C("|s", "spin_ms", "[300]")})));
    auto poll_until = steady::now() + 5s;
    while (started.load() < 2 && steady::now() < poll_until)
      std::this_thread::sleep_for(5ms);
    REQUIRE(started.load() >= 2);
  }
  int answered = 0, stopped = 0, finished = 0;
  for (auto& h : pending)
    h.receive(
      [&](mpreg::response& r) {
        ++answered;
        if (r.ok())
          ++finished;
        else if (r.error->code == 1002)
          ++stopped;
      },
      [&](caf::error& e) { FAIL("no answer: " << sys.render(e)); });
  CHECK(answered == calls);
  CHECK(finished + stopped == calls);
  CHECK(stopped > 0); // some were still queued
  CHECK(finished == started.load());
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count();
  CHECK(ms < 8000);
}
