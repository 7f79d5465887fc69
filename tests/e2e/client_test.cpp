// End-to-end tests of mpreg::client, the WebSocket client transport and the
// `mpreg` CLI against real mpreg-node processes.
//
// Build-time paths (cpp_args): MPREG_NODE_PATH (mpreg-node), MPREG_CLI_PATH
// (mpreg), and MPREG_TEST_MODULE_PATH when the test module with sleep_ms/fail
// exists. $MPREG_TEST_NODE overrides the node executable at run time.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <thread>
#include <vector>

#include "mpreg/client.hpp"
#include "support/exec_args.hpp"
#include "support/node_process.hpp"
#include "support/test_env.hpp"
#include "transport/ws_client.hpp"

using namespace std::chrono_literals;
using mpreg::json;
using mpreg::test::node_process;
using steady = std::chrono::steady_clock;

namespace {

using mpreg::test::ms_since;

std::string node_exe() {
  return mpreg::test::node_executable(MPREG_NODE_PATH);
}

bool have_test_module() {
#ifdef MPREG_TEST_MODULE_PATH
  return true;
#else
  return false;
#endif
}

node_process start_node(std::vector<std::string> extra = {}, int port = 0) {
  if (node_exe().empty())
    throw mpreg::test::node_process_error("mpreg-node was not built: set $MPREG_TEST_NODE");
  std::vector<std::string> args{"--port", std::to_string(port)};
#ifdef MPREG_TEST_MODULE_PATH
  args.push_back("--module");
  args.push_back(MPREG_TEST_MODULE_PATH);
#endif
  args.insert(args.end(), extra.begin(), extra.end());
  return node_process(node_exe(), args);
}

// Starts a node on `port`, retrying briefly: right after a crash the port may
// still be held for a moment by the dying process.
node_process restart_node(int port) {
  auto deadline = steady::now() + 10s;
  for (;;) {
    try {
      return start_node({}, port);
    } catch (const mpreg::test::node_process_error&) {
      if (steady::now() > deadline)
        throw;
      std::this_thread::sleep_for(100ms);
    }
  }
}

using mpreg::test::cmd;

template <class F>
auto time_ms(F&& f) {
  auto t0 = steady::now();
  f();
  return ms_since(t0);
}

} // namespace

// ---------------------------------------------------------------- transport

TEST_CASE("transport: a refused connection reports on_close promptly") {
  int port = mpreg::test::free_port();
  mpreg::transport::ws_client_endpoint ep;
  std::promise<std::string> closed;
  mpreg::transport::ws_handlers h;
  std::atomic<bool> opened{false};
  h.on_open = [&] { opened = true; };
  h.on_close = [&](std::string reason) { closed.set_value(reason); };
  auto t0 = steady::now();
  auto conn = ep.connect("ws://127.0.0.1:" + std::to_string(port), std::move(h), 3s);
  auto f = closed.get_future();
  REQUIRE(f.wait_for(5s) == std::future_status::ready);
  CHECK(ms_since(t0) < 2000);
  CHECK_FALSE(opened.load());
  CHECK_FALSE(conn->send("x"));
  MESSAGE("refused: " << f.get());
}

TEST_CASE("transport: a bad URL reports on_close") {
  mpreg::transport::ws_client_endpoint ep;
  std::promise<std::string> closed;
  mpreg::transport::ws_handlers h;
  h.on_close = [&](std::string reason) { closed.set_value(reason); };
  auto conn = ep.connect("not a url", std::move(h));
  auto f = closed.get_future();
  REQUIRE(f.wait_for(5s) == std::future_status::ready);
  CHECK(f.get().find("not a url") != std::string::npos);
}

TEST_CASE("transport: timers run in order and cancelled ones never run") {
  mpreg::transport::ws_client_endpoint ep;
  std::mutex m;
  std::vector<int> order;
  std::promise<void> done;
  auto t1 = ep.run_after(30ms, [&] {
    std::lock_guard<std::mutex> l(m);
    order.push_back(2);
  });
  auto t2 = ep.run_after(10ms, [&] {
    std::lock_guard<std::mutex> l(m);
    order.push_back(1);
  });
  auto t3 = ep.run_after(20ms, [&] {
    std::lock_guard<std::mutex> l(m);
    order.push_back(99);
  });
  t3->cancel();
  auto t4 = ep.run_after(60ms, [&] { done.set_value(); });
  REQUIRE(done.get_future().wait_for(5s) == std::future_status::ready);
  std::lock_guard<std::mutex> l(m);
  CHECK(order == std::vector<int>{1, 2});
  bool on_thread = false;
  std::promise<void> p;
  ep.post([&] {
    on_thread = ep.on_endpoint_thread();
    p.set_value();
  });
  p.get_future().wait();
  CHECK(on_thread);
  CHECK_FALSE(ep.on_endpoint_thread());
}

TEST_CASE("transport: destroying the endpoint with pending timers is prompt") {
  auto ms = time_ms([] {
    mpreg::transport::ws_client_endpoint ep;
    for (int i = 0; i < 100; ++i)
      ep.run_after(60s, [] {});
  });
  CHECK(ms < 2500);
}

// ------------------------------------------------------------------ client

TEST_CASE("client: refused connection and requests while not connected") {
  int port = mpreg::test::free_port();
  mpreg::client c("ws://127.0.0.1:" + std::to_string(port));
  CHECK_THROWS_AS(c.connect(), mpreg::connection_error);
  CHECK_FALSE(c.connected());
  auto t0 = steady::now();
  auto f = c.request({cmd("|a", "echo", {1})});
  CHECK_THROWS_AS(f.get(), mpreg::connection_error);
  CHECK(ms_since(t0) < 100);
  try {
    c.call("echo", {1});
    FAIL("no exception");
  } catch (const mpreg::connection_error& e) {
    CHECK(e.code() == 0);
  }
}

TEST_CASE("client: echo, echos, kwargs and the README request") {
  auto node = start_node({"--resources", "dataset-1"});
  mpreg::client c(node.url());
  c.connect();
  CHECK(c.connected());
  CHECK(c.call("echo", {"hi there!"}) == json("hi there!"));
  CHECK(c.call("echo", {}, {{"arg", json("kw")}}) == json("kw"));
  CHECK(c.call("echos", {"a", 2, nullptr}) == json::make_array({"a", 2, nullptr}));
  CHECK(c.call("echo", {json::make_object({{"deep", json::make_array({1.5, true})}})}) ==
        json::make_object({{"deep", json::make_array({1.5, true})}}));
  CHECK(c.call("echo", {"x"}, {}, {"dataset-1"}) == json("x"));

  // MPREG's README example; the expected r is taken from PROTOCOL.md.
  std::vector<mpreg::command> cmds{
    cmd("|first", "echo", {"hi there!"}),
    cmd("|second", "echo", {"|first"}),
    cmd("|third", "echos", {"|first", "AND ME TOO"}, {"dataset-1"}),
  };
  json r = c.request(cmds).get();
  CHECK(r == json::parse(R"({"|second": "hi there!", "|third": ["hi there!", "AND ME TOO"]})"));

  // The callback form.
  std::promise<mpreg::rpc_result> p;
  c.request_async({cmd("|x", "echo", {7})}, [&](mpreg::rpc_result res) { p.set_value(res); });
  auto res = p.get_future().get();
  REQUIRE(res.ok());
  CHECK(res.get() == json::parse(R"({"|x": 7})"));
  CHECK(c.pending() == 0);
}

TEST_CASE("client: server errors become rpc_exception with the node's code") {
  auto node = start_node();
  mpreg::client c(node.url());
  c.connect();
  try {
    c.call("no_such_function", {1});
    FAIL("no exception");
  } catch (const mpreg::rpc_exception& e) {
    CHECK(e.code() == 1001);
    CHECK(e.error().code == 1001);
    CHECK_FALSE(e.message().empty());
  }
  // A function that exists, but not with the requested resources.
  try {
    c.call("echo", {1}, {}, {"no-such-resource"});
    FAIL("no exception");
  } catch (const mpreg::rpc_exception& e) {
    CHECK(e.code() == 1001);
  }
  // A duplicate name: invalid request.
  auto f = c.request({cmd("|a", "echo", {1}), cmd("|a", "echo", {2})});
  try {
    f.get();
    FAIL("no exception");
  } catch (const mpreg::rpc_exception& e) {
    CHECK(e.code() == 1006);
  }
  if (have_test_module()) {
    try {
      c.call("fail", {"boom"});
      FAIL("no exception");
    } catch (const mpreg::rpc_exception& e) {
      CHECK(e.code() == 1003);
      CHECK(std::string(e.what()).find("boom") != std::string::npos);
    }
  }
  // The connection still works after errors.
  CHECK(c.call("echo", {"still here"}) == json("still here"));
}

TEST_CASE("client: 1,000 concurrent calls from 8 threads over one client") {
  auto node = start_node();
  mpreg::client c(node.url());
  c.connect();
  constexpr int threads = 8, per_thread = 125;
  std::atomic<int> matched{0}, mismatched{0}, failed{0};
  auto t0 = steady::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::vector<std::pair<json, std::future<json>>> inflight;
      for (int i = 0; i < per_thread; ++i) {
        json payload = json::make_object({{"t", t}, {"i", i}, {"s", std::string(i % 7, 'x')}});
        auto f = c.request({cmd("|e", "echo", {payload})});
        inflight.emplace_back(std::move(payload), std::move(f));
      }
      for (auto& [payload, f] : inflight) {
        try {
          json r = f.get();
          const json* v = r.find("|e");
          if (v && *v == payload)
            ++matched;
          else
            ++mismatched;
        } catch (const std::exception&) {
          ++failed;
        }
      }
    });
  for (auto& th : pool)
    th.join();
  double ms = ms_since(t0);
  MESSAGE("1000 concurrent calls (8 threads, one client): " << ms << " ms, "
                                                            << (1000.0 / ms * 1000.0) << " calls/s");
  CHECK(matched.load() == threads * per_thread);
  CHECK(mismatched.load() == 0);
  CHECK(failed.load() == 0);
  CHECK(c.pending() == 0);
}

TEST_CASE("client: sequential round-trip latency") {
  auto node = start_node();
  mpreg::client c(node.url());
  c.connect();
  for (int i = 0; i < 20; ++i) // warm up
    c.call("echo", {i});
  constexpr int n = 2000;
  std::vector<double> us;
  us.reserve(n);
  for (int i = 0; i < n; ++i) {
    auto t0 = steady::now();
    REQUIRE(c.call("echo", {i}) == json(i));
    us.push_back(ms_since(t0) * 1000.0);
  }
  std::sort(us.begin(), us.end());
  double sum = 0;
  for (double u : us)
    sum += u;
  MESSAGE("sequential call(): mean " << sum / n << " us, p50 " << us[n / 2] << " us, p90 "
                                     << us[n * 9 / 10] << " us, p99 " << us[n * 99 / 100] << " us");
}

TEST_CASE("client: pipelined throughput, 64 in flight") {
  auto node = start_node();
  mpreg::client c(node.url());
  c.connect();
  constexpr int n = 20000, window = 64;
  std::mutex m;
  std::condition_variable cv;
  int in_flight = 0, ok = 0, bad = 0;
  auto t0 = steady::now();
  for (int i = 0; i < n; ++i) {
    {
      std::unique_lock<std::mutex> l(m);
      cv.wait(l, [&] { return in_flight < window; });
      ++in_flight;
    }
    c.request_async({cmd("|e", "echo", {i})}, [&, i](mpreg::rpc_result res) {
      bool good = res.ok() && res.r == json::make_object({{"|e", i}});
      std::lock_guard<std::mutex> l(m);
      --in_flight;
      ++(good ? ok : bad);
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> l(m);
    REQUIRE(cv.wait_for(l, 60s, [&] { return in_flight == 0; }));
  }
  double ms = ms_since(t0);
  MESSAGE("pipelined (64 in flight): " << n / ms * 1000.0 << " requests/s");
  CHECK(ok == n);
  CHECK(bad == 0);
}

TEST_CASE("client: a client-side timeout frees the slot and disturbs no other call") {
  auto node = start_node();
  mpreg::client c(node.url());
  c.connect();
  // Freeze the node: nothing answers, so the deadline is the client's own.
  REQUIRE(node.signal(SIGSTOP));
  mpreg::request_options quick;
  quick.timeout = 0.3;
  quick.send_timeout = false;
  auto t0 = steady::now();
  auto frozen = c.request({cmd("|a", "echo", {"late"})}, quick);
  auto other = c.request({cmd("|b", "echo", {"patient"})}); // default 30 s deadline
  CHECK_THROWS_AS(frozen.get(), mpreg::timeout_error);
  double ms = ms_since(t0);
  CHECK(ms >= 290);
  CHECK(ms < 1500);
  CHECK(c.pending() == 1); // the slot of the timed-out request is free
  REQUIRE(node.signal(SIGCONT));
  // The late answer to |a arrives now and is ignored; |b completes.
  CHECK(other.get() == json::parse(R"({"|b": "patient"})"));
  CHECK(c.call("echo", {"after"}) == json("after"));
  CHECK(c.pending() == 0);
}

TEST_CASE("client: a slow call times out while fast calls go on" * doctest::skip(!have_test_module())) {
  auto node = start_node();
  mpreg::client c(node.url());
  c.connect();
  // The node is told the deadline: its 1007 answer is a timeout_error too,
  // carrying the node's details (the unfinished command).
  auto t0 = steady::now();
  mpreg::request_options o;
  o.timeout = 0.5;
  auto slow = c.request({cmd("|s", "sleep_ms", {3000})}, o);
  std::vector<std::future<json>> fast;
  for (int i = 0; i < 200; ++i)
    fast.push_back(c.request({cmd("|f", "echo", {i})}));
  for (int i = 0; i < 200; ++i)
    CHECK(fast[static_cast<std::size_t>(i)].get() == json::make_object({{"|f", i}}));
  try {
    slow.get();
    FAIL("no exception");
  } catch (const mpreg::timeout_error& e) {
    CHECK(e.code() == 1007);
    CHECK(e.details().dump().find("|s") != std::string::npos); // the node's, not the client's
  }
  CHECK(ms_since(t0) < 2500);
  // Not telling the node: the client's own deadline, timeout_error.
  o.send_timeout = false;
  o.timeout = 0.3;
  auto slow2 = c.request({cmd("|s", "sleep_ms", {1000})}, o);
  CHECK_THROWS_AS(slow2.get(), mpreg::timeout_error);
  CHECK(c.call("sleep_ms", {10}) == json(10));
  std::this_thread::sleep_for(900ms); // the late answer comes and is ignored
  CHECK(c.call("echo", {"ok"}) == json("ok"));
  CHECK(c.pending() == 0);
}

TEST_CASE("client: a killed node fails every pending request promptly") {
  auto node = start_node();
  mpreg::client c(node.url());
  c.connect();
  // Frozen, the node holds the requests unanswered; then it dies.
  REQUIRE(node.signal(SIGSTOP));
  std::vector<std::future<json>> futures;
  for (int i = 0; i < 50; ++i)
    futures.push_back(c.request({cmd("|a", "echo", {i})}));
  std::this_thread::sleep_for(100ms);
  CHECK(c.pending() == 50);
  auto t0 = steady::now();
  node.kill();
  int lost = 0;
  for (auto& f : futures) {
    REQUIRE(f.wait_for(5s) == std::future_status::ready);
    try {
      f.get();
    } catch (const mpreg::connection_error&) {
      ++lost;
    }
  }
  double ms = ms_since(t0);
  MESSAGE("50 pending requests failed " << ms << " ms after SIGKILL");
  CHECK(lost == 50);
  CHECK(ms < 2000);
  CHECK_FALSE(c.connected());
  // Requests fail fast once disconnected.
  auto t1 = steady::now();
  CHECK_THROWS_AS(c.call("echo", {1}), mpreg::connection_error);
  CHECK(ms_since(t1) < 100);
}

TEST_CASE("client: destroying a client fails its pending requests, in bounded time") {
  auto node = start_node();
  std::future<json> f;
  std::atomic<int> callbacks_failed{0};
  double ms;
  {
    auto c = std::make_unique<mpreg::client>(node.url());
    c->connect();
    REQUIRE(node.signal(SIGSTOP)); // nothing will be answered, nor the close handshake
    f = c->request({cmd("|a", "echo", {1})});
    for (int i = 0; i < 10; ++i)
      c->request_async({cmd("|a", "echo", {i})}, [&](mpreg::rpc_result res) {
        try {
          res.get();
        } catch (const mpreg::connection_error&) {
          ++callbacks_failed;
        }
      });
    ms = time_ms([&] { c.reset(); });
  }
  MESSAGE("~client with a frozen node: " << ms << " ms");
  CHECK(ms < 4000);
  REQUIRE(f.wait_for(0s) == std::future_status::ready);
  CHECK_THROWS_AS(f.get(), mpreg::connection_error);
  CHECK(callbacks_failed.load() == 10);
  node.signal(SIGCONT);
}

TEST_CASE("client: reconnects after the node restarts on the same port") {
  auto node = std::make_unique<node_process>(start_node());
  int port = node->port();
  mpreg::client_options o;
  o.reconnect = true;
  o.initial_backoff = 50ms;
  o.max_backoff = 400ms;
  mpreg::client c(node->url(), o);
  c.connect();
  CHECK(c.call("echo", {1}) == json(1));

  node->kill();
  node.reset();
  // While the node is down requests fail fast (they are not queued).
  auto t0 = steady::now();
  bool failed_fast = false;
  while (ms_since(t0) < 2000) {
    auto t1 = steady::now();
    try {
      c.call("echo", {2});
    } catch (const mpreg::connection_error&) {
      failed_fast = ms_since(t1) < 100;
      if (!c.connected())
        break;
    }
    std::this_thread::sleep_for(10ms);
  }
  CHECK(failed_fast);
  CHECK_FALSE(c.connected());
  std::this_thread::sleep_for(500ms); // several failed attempts at max backoff

  auto t2 = steady::now();
  node = std::make_unique<node_process>(restart_node(port));
  REQUIRE(c.wait_connected(10s));
  MESSAGE("reconnected " << ms_since(t2) << " ms after the restart began");
  CHECK(c.call("echo", {"back"}) == json("back"));

  // close() stops reconnecting for good.
  c.close();
  CHECK_FALSE(c.connected());
  CHECK_FALSE(c.wait_connected(300ms));
  CHECK_THROWS_AS(c.call("echo", {3}), mpreg::connection_error);
  // And connect() brings it back.
  c.connect();
  CHECK(c.call("echo", {4}) == json(4));
}

TEST_CASE("client: an answer larger than max_message_size fails the request cleanly") {
  auto node = start_node();
  mpreg::client_options o;
  o.max_message_size = 4096;
  mpreg::client c(node.url(), o);
  c.connect();
  CHECK(c.call("echo", {"small"}) == json("small"));
  try {
    c.call("echo", {std::string(10000, 'x')});
    FAIL("no exception");
  } catch (const mpreg::connection_error& e) {
    MESSAGE("too large: " << std::string(e.what()));
  }
  CHECK_FALSE(c.connected());
}

TEST_CASE("client: request_raw sends a hand-built frame") {
  auto node = start_node();
  mpreg::client c(node.url());
  c.connect();
  // Frame text written by hand from PROTOCOL.md, not by our encoder.
  json frame = json::parse(
    R"({"role": "rpc", "u": "hand-1", "timeout": 5.0,
        "cmds": [{"name": "|first", "fun": "echo", "args": ["hi there!"], "kwargs": {}, "locs": []},
                 {"name": "|second", "fun": "echo", "args": ["|first"]}]})");
  CHECK(c.request_raw(frame).get() == json::parse(R"({"|second": "hi there!"})"));
  // No u: one is added.
  json no_u = json::parse(R"({"role": "rpc", "cmds": [{"name": "a", "fun": "echo", "args": [1]}]})");
  CHECK(c.request_raw(no_u).get() == json::parse(R"({"a": 1})"));
  CHECK_THROWS_AS(c.request_raw(json(3)), std::invalid_argument);
  // A malformed request gets error 1006 with our u.
  json bad = json::parse(R"({"role": "rpc", "u": "bad-1", "cmds": []})");
  try {
    c.request_raw(bad).get();
    FAIL("no exception");
  } catch (const mpreg::rpc_exception& e) {
    CHECK(e.code() == 1006);
  }
}

// --------------------------------------------------------------------- CLI

namespace {

struct cli_result {
  int code = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs the mpreg CLI with stdin from `input`; stdout and stderr captured
// (stdout written to `stdout_path` instead when given, e.g. /dev/full).
cli_result run_cli(std::vector<std::string> args, const std::string& input = "",
                   std::vector<std::string> env_extra = {}, const char* stdout_path = nullptr) {
  std::string dir = "/tmp/mpreg-cli-XXXXXX";
  REQUIRE(::mkdtemp(dir.data()) != nullptr);
  std::string in_p = dir + "/in", out_p = dir + "/out", err_p = dir + "/err";
  std::ofstream(in_p, std::ios::binary) << input;
  mpreg::test::exec_args call(MPREG_CLI_PATH, args, env_extra, {"MPREG_URL"});
  int in_fd = ::open(in_p.c_str(), O_RDONLY | O_CLOEXEC);
  int out_fd = stdout_path ? ::open(stdout_path, O_WRONLY | O_CLOEXEC)
                           : ::open(out_p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int err_fd = ::open(err_p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::execve(MPREG_CLI_PATH, call.argv(), call.envp());
    ::_exit(127);
  }
  ::close(in_fd);
  ::close(out_fd);
  ::close(err_fd);
  cli_result r;
  int status = 0;
  auto deadline = steady::now() + 30s;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (steady::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      FAIL("mpreg CLI did not finish in 30 s");
    }
    std::this_thread::sleep_for(5ms);
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out_p);
  r.err = slurp(err_p);
  ::unlink(in_p.c_str());
  ::unlink(out_p.c_str());
  ::unlink(err_p.c_str());
  ::rmdir(dir.c_str());
  return r;
}

json out_json(const cli_result& r) {
  INFO("stdout: " << r.out << " stderr: " << r.err);
  REQUIRE(!r.out.empty());
  CHECK(r.out.back() == '\n');
  CHECK(r.out.find('\n') == r.out.size() - 1); // one compact line (not a terminal)
  return json::parse(r.out);
}

} // namespace

TEST_CASE("cli: call, kwargs, locs and argument parsing") {
  auto node = start_node({"--resources", "dataset-1,model-a"});
  std::string url = node.url();

  auto r = run_cli({"--url", url, "call", "echo", "hi there!"});
  CHECK(r.code == 0);
  CHECK(r.out == "\"hi there!\"\n");

  // ARGs are JSON when they parse, strings otherwise.
  r = run_cli({"call", "echos", "a", "2", "{\"k\":[1]}", "true", "null", "\"quoted\"", "--url", url});
  CHECK(r.code == 0);
  CHECK(out_json(r) == json::parse(R"(["a", 2, {"k": [1]}, true, null, "quoted"])"));

  r = run_cli({"--url=" + url, "call", "echo", "--kw", "arg=hello"});
  CHECK(r.code == 0);
  CHECK(out_json(r) == json("hello"));
  r = run_cli({"--url", url, "call", "echo", "--kw", "arg=[1,2]"});
  CHECK(out_json(r) == json::make_array({1, 2}));

  r = run_cli({"--url", url, "call", "echo", "x", "--locs", "dataset-1,model-a"});
  CHECK(r.code == 0);
  CHECK(out_json(r) == json("x"));
  r = run_cli({"--url", url, "call", "echo", "x", "--locs", "gpu"});
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(r.err.rfind("error 1001: ", 0) == 0);

  // Arguments that look like options after --.
  r = run_cli({"--url", url, "call", "echos", "--", "--kw", "-5"});
  CHECK(r.code == 0);
  CHECK(out_json(r) == json::parse(R"(["--kw", -5])"));

  // $MPREG_URL is the default URL.
  r = run_cli({"call", "echo", "env"}, "", {"MPREG_URL=" + url});
  CHECK(r.code == 0);
  CHECK(out_json(r) == json("env"));

  r = run_cli({"--url", url, "--pretty", "call", "echos", "a", "b"});
  CHECK(r.code == 0);
  CHECK(r.out.find('\n') < r.out.size() - 1); // indented over several lines
  CHECK(json::parse(r.out) == json::make_array({"a", "b"}));
}

TEST_CASE("cli: request from a file and from stdin") {
  auto node = start_node({"--resources", "dataset-1"});
  std::string url = node.url();
  // MPREG's README request, as text from PROTOCOL.md.
  const std::string cmds = R"([
    {"name": "|first",  "fun": "echo",  "args": ["hi there!"], "kwargs": {}, "locs": []},
    {"name": "|second", "fun": "echo",  "args": ["|first"]},
    {"name": "|third",  "fun": "echos", "args": ["|first", "AND ME TOO"], "locs": ["dataset-1"]}
  ])";
  const json expected =
    json::parse(R"({"|second": "hi there!", "|third": ["hi there!", "AND ME TOO"]})");

  std::string path = "/tmp/mpreg-cli-request-" + std::to_string(::getpid()) + ".json";
  std::ofstream(path) << cmds;
  auto r = run_cli({"--url", url, "request", path});
  CHECK(r.code == 0);
  CHECK(out_json(r) == expected);
  ::unlink(path.c_str());

  r = run_cli({"--url", url, "request", "-"}, cmds);
  CHECK(r.code == 0);
  CHECK(out_json(r) == expected);

  // A full request object, with its own u and timeout.
  r = run_cli({"--url", url, "request", "-"},
              R"({"role": "rpc", "u": "cli-1", "timeout": 5.0, "cmds": )" + cmds + "}");
  CHECK(r.code == 0);
  CHECK(out_json(r) == expected);
  // ... and without a u.
  r = run_cli({"--url", url, "request", "-"}, R"({"role": "rpc", "cmds": )" + cmds + "}");
  CHECK(r.code == 0);
  CHECK(out_json(r) == expected);

  // A request the node rejects: a cycle (error 1006).
  r = run_cli({"--url", url, "request", "-"},
              R"([{"name": "a", "fun": "echo", "args": ["b"]},
                  {"name": "b", "fun": "echo", "args": ["a"]}])");
  CHECK(r.code == 1);
  CHECK(r.err.rfind("error 1006: ", 0) == 0);
}

TEST_CASE("cli: peers prints the node's STATUS answer") {
  auto node = start_node();
  auto r = run_cli({"--url", node.url(), "peers"});
  INFO("stderr: " << r.err);
  CHECK(r.code == 0);
  if (r.code == 0)
    CHECK_NOTHROW(json::parse(r.out));
}

TEST_CASE("cli: exit codes") {
  auto node = start_node();
  std::string url = node.url();
  // 1: the node answered with an error.
  auto r = run_cli({"--url", url, "call", "no_such_function"});
  CHECK(r.code == 1);
  CHECK(r.err.rfind("error 1001: ", 0) == 0);
  // 2: usage errors, before any connection is made.
  CHECK(run_cli({"--url", url, "call"}).code == 2);
  CHECK(run_cli({"--url", url, "frobnicate"}).code == 2);
  CHECK(run_cli({"--url", url, "--bogus", "call", "echo", "1"}).code == 2);
  CHECK(run_cli({"--url", url, "call", "echo", "--kw", "novalue"}).code == 2);
  CHECK(run_cli({"--url", url, "--timeout", "abc", "call", "echo", "1"}).code == 2);
  CHECK(run_cli({"--url", url, "request", "/nonexistent/file.json"}).code == 2);
  CHECK(run_cli({"--url", url, "request", "-"}, "{not json").code == 2);
  CHECK(run_cli({"--url", url, "request", "-"}, "42").code == 2);
  CHECK(run_cli({"--url", url, "request", "/tmp"}).code == 2); // a directory
  r = run_cli({"--url", url, "request", "-"}, R"({"role": "server", "cmds": []})");
  CHECK(r.code == 2);
  CHECK(r.err.find("role must be") != std::string::npos);
  CHECK(run_cli({"--url", url, "--timeout", "inf", "call", "echo", "1"}).code == 2);
  CHECK(run_cli({}).code == 2);
  // 4: the result could not be written.
  r = run_cli({"--url", url, "call", "echo", "1"}, "", {}, "/dev/full");
  CHECK(r.code == 4);
  CHECK(r.err.find("cannot write the result") != std::string::npos);
  r = run_cli({"--help"});
  CHECK(r.code == 0);
  CHECK(r.out.find("mpreg request -") != std::string::npos);
  // 3: no node there.
  int port = mpreg::test::free_port();
  r = run_cli({"--url", "ws://127.0.0.1:" + std::to_string(port), "call", "echo", "1"});
  CHECK(r.code == 3);
  CHECK(r.err.rfind("error 0: ", 0) == 0);
  // 3: a frozen node: the connect is bounded by --timeout.
  REQUIRE(node.signal(SIGSTOP));
  auto t0 = steady::now();
  r = run_cli({"--url", url, "--timeout", "0.5", "call", "echo", "1"});
  CHECK(r.code == 3);
  CHECK(r.err.rfind("error 0: ", 0) == 0);
  CHECK(ms_since(t0) < 4000);
  REQUIRE(node.signal(SIGCONT));
  // 3: a deadline (the node's own 1007 answer, or the client's timeout).
  if (have_test_module()) {
    r = run_cli({"--url", url, "--timeout", "0.5", "call", "sleep_ms", "3000"});
    CHECK(r.code == 3);
    CHECK(r.err.rfind("error 1007: ", 0) == 0);
    // --timeout replaces a request file's own timeout, for the node too.
    t0 = steady::now();
    r = run_cli({"--url", url, "--timeout", "0.5", "request", "-"},
                R"({"timeout": 30, "cmds": [{"name": "s", "fun": "sleep_ms", "args": [3000]}]})");
    CHECK(r.code == 3);
    CHECK(r.err.rfind("error 1007: ", 0) == 0);
    CHECK(ms_since(t0) < 2500);
  }
  node.signal(SIGCONT);
}
