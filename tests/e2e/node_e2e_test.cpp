// End-to-end tests of one `mpreg-node` process over WebSocket, against
// PROTOCOL.md. Frames are written by hand from the spec (tests/e2e/raw_ws.hpp),
// never produced by our own encoder, and answers are read as plain JSON.
//
// Build-time paths: MPREG_NODE_PATH (mpreg-node), MPREG_TEST_MODULE_PATH
// (tests/modules: sleep_ms, fail, add, big, ...). $MPREG_TEST_NODE overrides
// the node executable at run time.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e/raw_ws.hpp"
#include "support/node_process.hpp"

using namespace std::chrono_literals;
using mpreg::json;
using mpreg::test::cmd;
using mpreg::test::eventually;
using mpreg::test::node_process;
using mpreg::test::q;
using mpreg::test::raw_conn;
using mpreg::test::rpc;
using steady = std::chrono::steady_clock;

namespace {

std::string node_exe() {
  if (const char* e = std::getenv("MPREG_TEST_NODE"); e && *e)
    return e;
  return MPREG_NODE_PATH;
}

node_process start_node(std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--port", "0", "--module", MPREG_TEST_MODULE_PATH,
                                "--log-level", "warn"};
  args.insert(args.end(), extra.begin(), extra.end());
  return node_process(node_exe(), args);
}

// One node shared by the tests that need no special flags (started once,
// from the main thread, SIGKILLed at exit by node_process if still running).
node_process& shared_node() {
  static node_process node = start_node({"--name", "e2e"});
  return node;
}

// One client endpoint (one I/O thread) for the whole run.
mpreg::transport::ws_client_endpoint& endpoint() {
  static mpreg::transport::ws_client_endpoint ep;
  return ep;
}

long long ms_since(steady::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count();
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A successful response frame: {"r": {...}, "error": null, "u": u}. Returns r.
json result(const json& frame, const std::string& u) {
  INFO("frame: " << frame.dump());
  REQUIRE(frame.is_object());
  REQUIRE(frame.find("u") != nullptr);
  CHECK(*frame.find("u") == json(u));
  REQUIRE(frame.find("error") != nullptr);
  REQUIRE(frame.find("error")->is_null());
  REQUIRE(frame.find("r") != nullptr);
  CHECK(frame.find("r")->is_object());
  return *frame.find("r");
}

// An error response frame: {"r": null, "error": {"code", "message", "details"}, "u": u}.
// Returns the error object.
json error_of(const json& frame, int code, const std::string& u) {
  INFO("frame: " << frame.dump());
  REQUIRE(frame.is_object());
  REQUIRE(frame.find("u") != nullptr);
  CHECK(*frame.find("u") == json(u));
  REQUIRE(frame.find("r") != nullptr);
  CHECK(frame.find("r")->is_null());
  const json* e = frame.find("error");
  REQUIRE(e != nullptr);
  REQUIRE(e->is_object());
  REQUIRE(e->find("code") != nullptr);
  CHECK(*e->find("code") == json(code));
  REQUIRE(e->find("message") != nullptr);
  CHECK(e->find("message")->is_string());
  CHECK(e->find("details") != nullptr);
  return *e;
}

std::string message_of(const json& error) {
  return error.find("message")->as_string();
}

// Sends a request and returns its answer frame (null on timeout).
json ask(raw_conn& c, const std::string& u, const std::vector<std::string>& cmds,
         const std::string& extra = "", std::chrono::milliseconds limit = 10000ms) {
  REQUIRE(c.send(rpc(u, cmds, extra)));
  return c.wait_u(u, limit);
}

// The connection and the node still serve: an echo round trip on `c`.
void still_serving(raw_conn& c, const std::string& tag) {
  auto u = "alive-" + tag;
  auto f = ask(c, u, {cmd("|a", "echo", "[" + q(tag) + "]")});
  CHECK(result(f, u) == json::make_object({{"|a", tag}}));
}

} // namespace

// ------------------------------------------------------------------ echo

TEST_CASE("e2e: echo returns strings, numbers, objects and arrays unchanged") {
  raw_conn c(endpoint(), shared_node().url());
  const char* values[] = {
    R"("hi there!")",
    R"("")",
    R"("unicode \u00e9\u65e5\ud83d\ude00 and \"quotes\" \\ \n")",
    R"("nul \u0000 inside, escapes \/ \b\f\r\t")",
    R"({"k\u0000ey": "\u00e9", "\n": []})",
    "0", "-17", "9007199254740993", "18446744073709551615", "-9223372036854775808", "3.25", "1e-7",
    "true", "false", "null",
    R"({"a": 1, "b": [1, 2, {"c": null}], "": "empty key"})",
    R"([])", R"({})", R"([[[[["deep"]]]]])",
    R"([1, "two", 3.5, null, true, {"six": [6]}])",
  };
  int i = 0;
  for (const char* v : values) {
    auto u = "echo-" + std::to_string(i++);
    auto f = ask(c, u, {cmd("|e", "echo", std::string("[") + v + "]")});
    CHECK(result(f, u) == json::make_object({{"|e", json::parse(v)}}));
  }
}

TEST_CASE("e2e: echo takes its argument as the keyword 'arg'; echos mixes types") {
  raw_conn c(endpoint(), shared_node().url());
  auto f = ask(c, "kw", {cmd("|e", "echo", "[]", R"({"arg": {"x": [1, 2]}})")});
  CHECK(result(f, "kw") == json::parse(R"({"|e": {"x": [1, 2]}})"));
  f = ask(c, "echos", {cmd("|e", "echos", R"([1, "two", [3], {"four": 4}, null, false, 7.5])")});
  CHECK(result(f, "echos") ==
        json::parse(R"({"|e": [1, "two", [3], {"four": 4}, null, false, 7.5]})"));
  f = ask(c, "echos0", {cmd("|e", "echos")});
  CHECK(result(f, "echos0") == json::parse(R"({"|e": []})"));
  // args, kwargs and locs are optional; null counts as absent.
  REQUIRE(c.send(R"({"role":"rpc","u":"minimal","cmds":[{"name":"|e","fun":"echos"}]})"));
  CHECK(result(c.wait_u("minimal"), "minimal") == json::parse(R"({"|e": []})"));
  REQUIRE(c.send(
    R"({"role":"rpc","u":"nulls","cmds":[{"name":"|e","fun":"echos","args":null,"kwargs":null,"locs":null}]})"));
  CHECK(result(c.wait_u("nulls"), "nulls") == json::parse(R"({"|e": []})"));
  // echo with two arguments, or an unknown keyword: 1003 naming echo.
  auto e = error_of(ask(c, "echo2", {cmd("|e", "echo", "[1, 2]")}), 1003, "echo2");
  CHECK(contains(message_of(e), "echo"));
  e = error_of(ask(c, "echokw", {cmd("|e", "echo", "[]", R"({"nope": 1})")}), 1003, "echokw");
  CHECK(contains(message_of(e), "echo"));
  e = error_of(ask(c, "echoskw", {cmd("|e", "echos", "[1]", R"({"k": 1})")}), 1003, "echoskw");
  CHECK(contains(message_of(e), "echos"));
}

// ------------------------------------------------------------------ README

TEST_CASE("e2e: MPREG README examples answer exactly the documented results") {
  raw_conn c(endpoint(), shared_node().url());
  SUBCASE("the |first |second |third example") {
    auto f = ask(c, "readme-a",
                 {cmd("|first", "echo", R"(["hi there!"])", "{}", "[]"),
                  cmd("|second", "echo", R"(["|first"])"),
                  cmd("|third", "echos", R"(["|first", "AND ME TOO"])")},
                 R"("timeout": 5.0)");
    CHECK(result(f, "readme-a") ==
          json::parse(R"({"|second": "hi there!", "|third": ["hi there!", "AND ME TOO"]})"));
  }
  SUBCASE("3-returns-1") {
    auto f = ask(c, "readme-b",
                 {cmd("|first", "echo", R"(["hi there!"])"), cmd("|second", "echo", R"(["|first"])"),
                  cmd("|third", "echos", R"(["|first", "|second", "AND ME TOO"])")});
    CHECK(result(f, "readme-b") ==
          json::parse(R"({"|third": ["hi there!", "hi there!", "AND ME TOO"]})"));
  }
  SUBCASE("4-returns-1") {
    auto f = ask(c, "readme-c",
                 {cmd("|first", "echo", R"(["hi there!"])"), cmd("|second", "echo", R"(["|first"])"),
                  cmd("|third", "echos", R"(["|first", "|second", "AND ME TOO"])"),
                  cmd("|4th", "echo", R"(["|third"])")});
    CHECK(result(f, "readme-c") ==
          json::parse(R"({"|4th": ["hi there!", "hi there!", "AND ME TOO"]})"));
  }
  SUBCASE("first/second without pipes, and the single call") {
    auto f = ask(c, "readme-d",
                 {cmd("first", "echo", R"(["hi there!"])"), cmd("second", "echo", R"(["first"])")});
    CHECK(result(f, "readme-d") == json::parse(R"({"second": "hi there!"})"));
    f = ask(c, "readme-e", {cmd("first", "echo", R"(["hi there!"])")});
    CHECK(result(f, "readme-e") == json::parse(R"({"first": "hi there!"})"));
  }
  SUBCASE("call(\"echo\", \"echo\"): the own name is a literal") {
    auto f = ask(c, "readme-f", {cmd("echo", "echo", R"(["echo"])")});
    CHECK(result(f, "readme-f") == json::parse(R"({"echo": "echo"})"));
  }
  SUBCASE("an independent branch is kept: A->B plus C answers {B, C}") {
    auto f = ask(c, "branch",
                 {cmd("A", "echo", "[1]"), cmd("B", "echo", R"(["A"])"), cmd("C", "echo", "[3]")});
    CHECK(result(f, "branch") == json::parse(R"({"B": 1, "C": 3})"));
  }
}

// ------------------------------------------------------------------ references

TEST_CASE("e2e: references nested in args, kwargs values and arrays are resolved") {
  raw_conn c(endpoint(), shared_node().url());
  auto f = ask(c, "nested",
               {cmd("|show", "show", R"([["|a", {"k": "|b", "|a": "key"}], "|a b", 5])",
                    R"({"x": "|a", "deep": {"list": [["|b"]], "n": 1}, "|b": "|b"})"),
                cmd("|a", "add", "[1, 2]"), cmd("|b", "concat", R"(["x", "y"])")});
  CHECK(result(f, "nested") == json::parse(R"({"|show": {
      "args": [[3, {"k": "xy", "|a": "key"}], "|a b", 5],
      "kwargs": {"x": 3, "deep": {"list": [["xy"]], "n": 1}, "|b": "xy"}}})"));
  // Typed kwargs by params, fed by references.
  f = ask(c, "kwref", {cmd("|a", "inc", "[9]"), cmd("|s", "add", "[]", R"({"b": "|a", "a": 100})")});
  CHECK(result(f, "kwref") == json::parse(R"({"|s": 110})"));
  // The largest 64-bit integers travel exactly; a sum past them is the function's error.
  f = ask(c, "max", {cmd("|a", "add", "[9223372036854775806, 1]")});
  CHECK(result(f, "max") == json::parse(R"({"|a": 9223372036854775807})"));
  auto over = error_of(ask(c, "over", {cmd("|a", "add", "[9223372036854775807, 1]")}), 1003, "over");
  CHECK(over.find("message")->as_string().find("integer overflow") != std::string::npos);
  // Numbers and substrings are never references.
  f = ask(c, "lit", {cmd("1", "echo", "[2]"), cmd("|x", "echos", R"([1, "|x1", "1 "])")});
  CHECK(result(f, "lit") == json::parse(R"({"1": 2, "|x": [1, "|x1", "1 "]})"));
}

TEST_CASE("e2e: a 3-step chain and a 10-way fan-in of user functions") {
  raw_conn c(endpoint(), shared_node().url());
  // Listed consumer first: |c = inc(inc(add(20, 20))).
  auto f = ask(c, "chain",
               {cmd("|c", "inc", R"(["|b"])"), cmd("|b", "inc", R"(["|a"])"),
                cmd("|a", "add", "[20, 20]")});
  CHECK(result(f, "chain") == json::parse(R"({"|c": 42})"));

  std::vector<std::string> cmds;
  std::string refs;
  for (int i = 0; i < 10; ++i) {
    auto n = "|i" + std::to_string(i);
    cmds.push_back(cmd(n, "sleep_ms", "[" + std::to_string(100 + i) + "]"));
    refs += (i ? "," : "") + q(n);
  }
  cmds.push_back(cmd("|sum", "sum", "[[" + refs + "]]"));  // nested in an array
  cmds.push_back(cmd("|all", "sum_all", "[" + refs + "]")); // top level
  auto t0 = steady::now();
  f = ask(c, "fanin", cmds);
  auto ms = ms_since(t0);
  CHECK(result(f, "fanin") == json::parse(R"({"|sum": 1045, "|all": 1045})"));
  CHECK(ms < 900); // ten 100 ms sleeps run side by side (serial: over 1 s)
}

TEST_CASE("e2e: independent commands run in parallel") {
  raw_conn c(endpoint(), shared_node().url());
  auto t0 = steady::now();
  auto f = ask(c, "par",
               {cmd("|a", "sleep_ms", "[500]"), cmd("|b", "sleep_ms", "[500]"),
                cmd("|c", "sleep_ms", "[500]"), cmd("|all", "echos", R"(["|a", "|b", "|c"])")});
  auto ms = ms_since(t0);
  CHECK(result(f, "par") == json::parse(R"({"|all": [500, 500, 500]})"));
  CHECK(ms >= 500);
  CHECK(ms < 1300);
  // Separate requests on one connection do not wait for each other either.
  t0 = steady::now();
  REQUIRE(c.send(rpc("slow", {cmd("|s", "sleep_ms", "[800]")})));
  f = ask(c, "fast", {cmd("|f", "echo", "[1]")});
  CHECK(result(f, "fast") == json::parse(R"({"|f": 1})"));
  CHECK(ms_since(t0) < 600);
  CHECK(result(c.wait_u("slow"), "slow") == json::parse(R"({"|s": 800})"));
}

TEST_CASE("e2e: pool calls: one client's flood does not queue ahead of another's; each client's start in order") {
  // One pool thread and CPU-bound calls (the pool grows only for blocked
  // threads): a queue forms. Connections take turns on it.
  auto node = start_node({"--workers", "1"});
  raw_conn flood(endpoint(), node.url());
  raw_conn other(endpoint(), node.url());
  constexpr int n = 12;
  for (int i = 0; i < n; ++i)
    REQUIRE(flood.send(rpc("flood-" + std::to_string(i), {cmd("|s", "spin_ms", "[30]")})));
  REQUIRE(flood.wait_frames(1)); // one ran: the rest are queued by now
  REQUIRE(other.send(rpc("other", {cmd("|s", "spin_ms", "[1]")})));
  CHECK(result(other.wait_u("other"), "other") == json::parse(R"({"|s": 1})"));
  // First come, first served would have answered all n first.
  CHECK(flood.frame_count() < n / 2);
  REQUIRE(flood.wait_frames(n));
  for (int i = 0; i < n; ++i)
    CHECK(flood.count_u("flood-" + std::to_string(i)) == 1);

  // One connection's calls start in the order sent, also those the node
  // read in one burst (CAF 0.17 ran the jobs spawned for a burst last-first).
  raw_conn burst(endpoint(), node.url());
  for (int i = 0; i < 8; ++i)
    REQUIRE(burst.send(rpc("b" + std::to_string(i), {cmd("|s", "spin_ms", "[5]")})));
  REQUIRE(burst.wait_frames(8));
  std::vector<std::string> order;
  for (const auto& f : burst.frames())
    order.push_back(f.find("u") ? f.find("u")->as_string() : "?");
  CHECK(order == std::vector<std::string>{"b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7"});
}

TEST_CASE("e2e: large graphs: a 1,000-step chain and a 2,000-way fan-in") {
  raw_conn c(endpoint(), shared_node().url());
  std::vector<std::string> chain{cmd("c0", "inc", "[0]")};
  for (int i = 1; i < 1000; ++i)
    chain.push_back(cmd("c" + std::to_string(i), i % 2 ? "inc" : "echo",
                        "[" + q("c" + std::to_string(i - 1)) + "]"));
  std::reverse(chain.begin(), chain.end()); // consumers first
  auto f = ask(c, "chain1000", chain, "", 20000ms);
  CHECK(result(f, "chain1000") == json::parse(R"({"c999": 501})"));

  std::vector<std::string> fan;
  std::string refs;
  for (int i = 0; i < 2000; ++i) {
    auto n = "f" + std::to_string(i);
    fan.push_back(cmd(n, "echo", "[" + std::to_string(i) + "]"));
    refs += (i ? "," : "") + q(n);
  }
  fan.push_back(cmd("total", "sum", "[[" + refs + "]]"));
  f = ask(c, "fan2000", fan, "", 20000ms);
  CHECK(result(f, "fan2000") == json::parse(R"({"total": 1999000})"));
}

// ------------------------------------------------------------------ load

TEST_CASE("e2e: 500 requests in flight on one connection, each answered once and correctly") {
  raw_conn c(endpoint(), shared_node().url());
  constexpr int n = 500;
  for (int i = 0; i < n; ++i) {
    auto u = "many-" + std::to_string(i);
    std::vector<std::string> cmds;
    switch (i % 4) {
      case 0: cmds = {cmd("|x", "echo", "[" + std::to_string(i) + "]")}; break;
      case 1: cmds = {cmd("|x", "add", "[" + std::to_string(i) + ", 1000]")}; break;
      case 2:
        cmds = {cmd("|a", "inc", "[" + std::to_string(i) + "]"), cmd("|x", "echos", R"(["|a"])")};
        break;
      default: cmds = {cmd("|x", "sleep_ms", "[" + std::to_string(i % 7) + "]")}; break;
    }
    REQUIRE(c.send(rpc(u, cmds)));
  }
  REQUIRE(c.wait_frames(n, 30000ms));
  for (int i = 0; i < n; ++i) {
    auto u = "many-" + std::to_string(i);
    json expect;
    switch (i % 4) {
      case 0: expect = json(i); break;
      case 1: expect = json(i + 1000); break;
      case 2: expect = json::make_array({i + 1}); break;
      default: expect = json(i % 7); break;
    }
    auto r = result(c.wait_u(u, 1000ms), u);
    CHECK(r == json::make_object({{"|x", expect}}));
  }
  std::this_thread::sleep_for(200ms); // nothing more may arrive
  CHECK(c.frame_count() == static_cast<std::size_t>(n));
  std::set<std::string> us;
  for (const auto& f : c.frames())
    us.insert(f.find("u")->as_string());
  CHECK(us.size() == static_cast<std::size_t>(n));
}

TEST_CASE("e2e: 20 concurrent connections") {
  constexpr int conns = 20, per = 25;
  std::vector<std::unique_ptr<raw_conn>> cs;
  for (int i = 0; i < conns; ++i)
    cs.push_back(std::make_unique<raw_conn>(endpoint(), shared_node().url()));
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int k = 0; k < conns; ++k)
    threads.emplace_back([&, k] {
      for (int i = 0; i < per; ++i)
        cs[static_cast<std::size_t>(k)]->send(
          rpc("c" + std::to_string(k) + "-" + std::to_string(i),
              {cmd("|a", "add", "[" + std::to_string(k) + ", " + std::to_string(i) + "]")}));
    });
  for (auto& t : threads)
    t.join();
  for (int k = 0; k < conns; ++k)
    for (int i = 0; i < per; ++i) {
      auto u = "c" + std::to_string(k) + "-" + std::to_string(i);
      auto f = cs[static_cast<std::size_t>(k)]->wait_u(u, 15000ms);
      if (f.is_object() && f.find("r") && *f.find("r") == json::make_object({{"|a", k + i}}))
        ++good;
    }
  CHECK(good.load() == conns * per);
  // Answers go to the connection that asked, and only there.
  for (int k = 0; k < conns; ++k)
    CHECK(cs[static_cast<std::size_t>(k)]->frame_count() == static_cast<std::size_t>(per));
}

// ------------------------------------------------------------------ bad input

TEST_CASE("e2e: malformed frames get 1006 with their u when it can be read; the connection keeps working") {
  raw_conn c(endpoint(), shared_node().url());
  struct bad_frame {
    std::string text;
    std::string u; // what the answer carries
  };
  const bad_frame bad[] = {
    {R"({"role": "rpc", "u": )", "unknown"}, // truncated before the u's value
    {"not json at all", "unknown"},
    {R"({"role":"rpc","u":"x",})", "x"}, // trailing comma
    {"[1, 2, 3]", "unknown"},            // not an object
    {R"("just a string")", "unknown"},
    {"42", "unknown"},
    {R"({"role":"rpc","u":7,"cmds":[{"name":"a","fun":"echo","args":[1]}]})", "unknown"}, // u not a string
    {R"({"role":"rpc","u":"x","cmds":[{"name":"a","fun":"echo","args":[1]}]} trailing)", "x"},
    {R"({"role":"rpc","u":"x","cmds":[]}{"role":"rpc","u":"y","cmds":[]})", "x"}, // two values
    {"", "unknown"},
    {"   \n ", "unknown"},
    {std::string("{\"role\":\"rpc\",\"u\":\"nul\"}") + std::string(1, '\0') + "{", "nul"}, // NUL, then junk
    {"{\"role\":\"rpc\",\"u\":\"ctl\",\"cmds\":[{\"name\":\"a\",\"fun\":\"echo\",\"args\":[\"a\x01b\"]}]}",
     "ctl"},
    {R"({"role":"rpc","u":"x","cmds":[{"name":"a","fun":"echo","args":["\ud800"]}]})", "x"}, // lone surrogate
    {"{'role': 'rpc'}", "unknown"}, // Python, not JSON
    {R"({"role":"rpc","u":"x","cmds":[{"name":"a","fun":"echo","args":[NaN]}]})", "x"},
    {R"({"role":"rpc","cmds":[{"name":"a","fun":"echo","args":[NaN]}],"u":"after"})", "after"},
  };
  int i = 0;
  for (const auto& b : bad) {
    CAPTURE(b.text);
    auto before = c.frame_count();
    REQUIRE(c.send(b.text));
    REQUIRE(c.wait_frames(before + 1, 5000ms));
    auto f = c.frames()[before];
    auto e = error_of(f, 1006, b.u);
    (void)e;
    still_serving(c, "malformed-" + std::to_string(i++));
  }
  // Whitespace around the object is fine.
  REQUIRE(c.send(" \n\t" + rpc("ws", {cmd("|a", "echo", "[1]")}) + " \r\n "));
  CHECK(result(c.wait_u("ws"), "ws") == json::parse(R"({"|a": 1})"));
}

TEST_CASE("e2e: wrong field types get 1006 carrying the request's u") {
  raw_conn c(endpoint(), shared_node().url());
  struct bad_case {
    const char* u;
    std::string frame;
  };
  const std::string ok_cmd = cmd("|a", "echo", "[1]");
  std::vector<bad_case> cases = {
    {"t-cmds-obj", R"({"role":"rpc","u":"t-cmds-obj","cmds":{}})"},
    {"t-cmds-str", R"({"role":"rpc","u":"t-cmds-str","cmds":"echo"})"},
    {"t-cmds-missing", R"({"role":"rpc","u":"t-cmds-missing"})"},
    {"t-cmd-num", R"({"role":"rpc","u":"t-cmd-num","cmds":[1]})"},
    {"t-name-num", R"({"role":"rpc","u":"t-name-num","cmds":[{"name":1,"fun":"echo","args":[1]}]})"},
    {"t-name-missing", R"({"role":"rpc","u":"t-name-missing","cmds":[{"fun":"echo","args":[1]}]})"},
    {"t-fun-missing", R"({"role":"rpc","u":"t-fun-missing","cmds":[{"name":"a","args":[1]}]})"},
    {"t-fun-arr", R"({"role":"rpc","u":"t-fun-arr","cmds":[{"name":"a","fun":["echo"]}]})"},
    {"t-args-obj", R"({"role":"rpc","u":"t-args-obj","cmds":[{"name":"a","fun":"echo","args":{"x":1}}]})"},
    {"t-args-str", R"({"role":"rpc","u":"t-args-str","cmds":[{"name":"a","fun":"echo","args":"x"}]})"},
    {"t-kwargs-arr", R"({"role":"rpc","u":"t-kwargs-arr","cmds":[{"name":"a","fun":"echo","kwargs":[1]}]})"},
    {"t-locs-str", R"({"role":"rpc","u":"t-locs-str","cmds":[{"name":"a","fun":"echo","args":[1],"locs":"gpu"}]})"},
    {"t-locs-num", R"({"role":"rpc","u":"t-locs-num","cmds":[{"name":"a","fun":"echo","args":[1],"locs":[1]}]})"},
    {"t-timeout-str", rpc("t-timeout-str", {ok_cmd}, R"("timeout":"5")")},
    {"t-timeout-neg", rpc("t-timeout-neg", {ok_cmd}, R"("timeout":-1)")},
    {"t-timeout-zero", rpc("t-timeout-zero", {ok_cmd}, R"("timeout":0)")},
  };
  for (const auto& bc : cases) {
    CAPTURE(bc.frame);
    REQUIRE(c.send(bc.frame));
    auto e = error_of(c.wait_u(bc.u, 5000ms), 1006, bc.u);
    CHECK(!message_of(e).empty());
    still_serving(c, bc.u);
  }
}

TEST_CASE("e2e: a bad role gets 1004; duplicates, cycles and empty cmds get 1006") {
  raw_conn c(endpoint(), shared_node().url());
  REQUIRE(c.send(R"({"role":"nonsense","u":"role-1","cmds":[]})"));
  auto e = error_of(c.wait_u("role-1", 5000ms), 1004, "role-1");
  CHECK(contains(message_of(e), "nonsense"));
  still_serving(c, "role-1");
  REQUIRE(c.send(R"({"role":17,"u":"role-2"})"));
  CHECK(message_of(error_of(c.wait_u("role-2", 5000ms), 1004, "role-2")) ==
        "field 'role' must be a string, got integer");
  // An answer-shaped frame is not a request either: it is answered, not dropped.
  REQUIRE(c.send(R"({"u":"role-4","r":"ADDED","error":null})"));
  CHECK(contains(message_of(error_of(c.wait_u("role-4", 5000ms), 1004, "role-4")), "role"));
  // So is an internal-answer: a node calls peers over links it opens.
  REQUIRE(c.send(R"({"role":"internal-answer","answer":1,"u":"role-5"})"));
  CHECK(contains(message_of(error_of(c.wait_u("role-5", 5000ms), 1004, "role-5")),
                 "unexpected 'internal-answer'"));
  // Malformed text keeps its u when it can be read (here: a number no
  // double holds, before the u).
  REQUIRE(c.send(R"({"role":"rpc","cmds":[{"name":"a","fun":"echo","args":[1e400]}],"u":"role-6"})"));
  error_of(c.wait_u("role-6", 5000ms), 1006, "role-6");
  REQUIRE(c.send(R"({"u":"role-3","cmds":[{"name":"a","fun":"echo","args":[1]}]})"));
  error_of(c.wait_u("role-3", 5000ms), 1004, "role-3");
  still_serving(c, "role-3");

  e = error_of(ask(c, "dup", {cmd("|a", "echo", "[1]"), cmd("|b", "echo", "[2]"),
                              cmd("|a", "echo", "[3]")}),
               1006, "dup");
  CHECK(contains(message_of(e), "|a"));
  CHECK(contains(e.find("details")->dump(), "|a")); // details name the problem
  still_serving(c, "dup");

  auto t0 = steady::now();
  e = error_of(ask(c, "cycle2", {cmd("|a", "echo", R"(["|b"])"), cmd("|b", "echo", R"(["|a"])")}),
               1006, "cycle2");
  CHECK(contains(message_of(e), "cycle"));
  CHECK(contains(e.find("details")->dump(), "|a"));
  CHECK(contains(e.find("details")->dump(), "|b"));
  e = error_of(ask(c, "cycle3", {cmd("|a", "echo", R"([["|c"]])"),
                                 cmd("|b", "echo", "[]", R"({"arg": "|a"})"),
                                 cmd("|c", "echos", R"([{"k": "|b"}])")}),
               1006, "cycle3");
  CHECK(contains(message_of(e), "cycle"));
  CHECK(ms_since(t0) < 2000); // never a hang
  still_serving(c, "cycle");

  REQUIRE(c.send(R"({"role":"rpc","u":"empty","cmds":[]})"));
  e = error_of(c.wait_u("empty", 5000ms), 1006, "empty");
  CHECK(contains(message_of(e), "cmds"));
  CHECK(contains(e.find("details")->dump(), "cmds"));
  still_serving(c, "empty");
}

TEST_CASE("e2e: unknown functions, bad arguments and throwing functions") {
  raw_conn c(endpoint(), shared_node().url());
  auto e = error_of(ask(c, "nofun", {cmd("|a", "no_such_function", "[1]")}), 1001, "nofun");
  CHECK(contains(message_of(e), "no_such_function"));
  still_serving(c, "nofun");

  // Known function, but no node has it with the requested locs.
  e = error_of(ask(c, "noloc", {cmd("|a", "echo", "[1]", "", R"(["dataset-404"])")}), 1001,
               "noloc");
  still_serving(c, "noloc");
  // A function's own resources count for its locs (node locs + fun_locs)...
  CHECK(result(ask(c, "gpu", {cmd("|a", "needs_gpu", "[1]", "", R"(["gpu"])")}), "gpu") ==
        json::parse(R"({"|a": 1})"));
  CHECK(result(ask(c, "gpu-none", {cmd("|a", "needs_gpu", "[2]")}), "gpu-none") ==
        json::parse(R"({"|a": 2})"));
  // ... but not for other functions, and every loc must be there.
  error_of(ask(c, "gpu-echo", {cmd("|a", "echo", "[1]", "", R"(["gpu"])")}), 1001, "gpu-echo");
  error_of(ask(c, "gpu-more", {cmd("|a", "needs_gpu", "[1]", "", R"(["gpu", "dataset-404"])")}),
           1001, "gpu-more");
  still_serving(c, "locs");

  e = error_of(ask(c, "count", {cmd("|a", "add", "[1]")}), 1003, "count");
  CHECK(contains(message_of(e), "add"));
  still_serving(c, "count");
  e = error_of(ask(c, "count3", {cmd("|a", "add", "[1, 2, 3]")}), 1003, "count3");
  CHECK(contains(message_of(e), "add"));
  e = error_of(ask(c, "type", {cmd("|a", "add", R"([1, "two"])")}), 1003, "type");
  CHECK(contains(message_of(e), "add"));
  CHECK(contains(message_of(e), "argument 2"));
  e = error_of(ask(c, "kwunk", {cmd("|a", "add", "[]", R"({"a": 1, "zz": 2})")}), 1003, "kwunk");
  CHECK(contains(message_of(e), "zz"));
  e = error_of(ask(c, "maptype", {cmd("|a", "typed_map", R"([{"k": "v"}])")}), 1003, "maptype");
  CHECK(contains(message_of(e), "typed_map"));
  CHECK(result(ask(c, "mapok", {cmd("|a", "typed_map", R"([{"k": 2, "j": -1}])")}), "mapok") ==
        json::parse(R"({"|a": {"j": -2, "k": 4}})"));
  still_serving(c, "types");

  e = error_of(ask(c, "throw", {cmd("|boom", "fail", R"(["it broke"])")}), 1003, "throw");
  CHECK(contains(message_of(e), "it broke"));
  CHECK(contains(e.find("details")->dump(), "|boom")); // details say which command
  CHECK(contains(e.find("details")->dump(), "fail"));
  still_serving(c, "throw");

  e = error_of(ask(c, "details", {cmd("|d", "fail_details", R"(["with details"])")}), 1003,
               "details");
  CHECK(contains(message_of(e), "with details"));
  CHECK(contains(e.find("details")->dump(), R"("reason":"with details")"));
  CHECK(contains(e.find("details")->dump(), R"("code":42)"));

  e = error_of(ask(c, "unknown-exc", {cmd("|u", "fail_unknown")}), 1003, "unknown-exc");
  still_serving(c, "unknown-exc");

  // A failing command in the middle of a graph fails the whole request.
  e = error_of(ask(c, "midfail", {cmd("|a", "inc", "[1]"), cmd("|b", "fail", R"(["mid"])"),
                                  cmd("|c", "echos", R"(["|a", "|b"])")}),
               1003, "midfail");
  CHECK(contains(message_of(e), "mid"));
  still_serving(c, "midfail");
}

TEST_CASE("e2e: a function returning invalid UTF-8 is answered with U+FFFD, never dropped") {
  raw_conn c(endpoint(), shared_node().url());
  CHECK(result(ask(c, "utf8", {cmd("s", "bad_utf8", "[]")}), "utf8") ==
        json::parse(R"({"s": "ok\ufffd\ufffd!"})"));
  still_serving(c, "utf8");
}

TEST_CASE("e2e: frames from clients that are answers or node messages do not break a session") {
  raw_conn c(endpoint(), shared_node().url());
  // STATUS is answered "STATUS" (MPREG); an unknown server message is 1000.
  REQUIRE(c.send(R"({"role":"server","u":"st","server":{"what":"STATUS"}})"));
  auto f = c.wait_u("st", 5000ms);
  REQUIRE(f.find("r") != nullptr);
  CHECK(*f.find("r") == json("STATUS"));
  REQUIRE(c.send(R"({"role":"server","u":"what","server":{"what":"DANCE"}})"));
  error_of(c.wait_u("what", 5000ms), 1000, "what");
  // A response-shaped frame from a client is not a request: no answer, no harm.
  REQUIRE(c.send(R"({"r": {"x": 1}, "error": null, "u": "stray"})"));
  still_serving(c, "server-msgs");
}

TEST_CASE("e2e: TCP probes, half handshakes and garbage leave no sessions behind") {
  auto& node = shared_node();
  raw_conn c(endpoint(), node.url());
  auto sessions = [&] {
    auto s = mpreg::test::http_get(node.port(), "/status");
    return s.first == 200 ? json::parse(s.second).find("sessions")->as_int() : -1;
  };
  REQUIRE(eventually([&] { return sessions() == 1; }, 5000ms, 50ms));
  for (int i = 0; i < 30; ++i) {
    int fd = mpreg::test::tcp_connect_local(node.port());
    REQUIRE(fd >= 0);
    std::string junk = i % 3 == 0   ? std::string("\x16\x03\x01\x02\x00\x01", 6) // a TLS hello
                       : i % 3 == 1 ? std::string("GET / HTTP/1.1\r\nUpgrade: websocket\r\n") // cut short
                                    : std::string();                                    // nothing
    if (!junk.empty())
      (void)::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
  // A WebSocket that opens and vanishes without a close frame.
  {
    mpreg::test::tcp_ws w(node.port());
    REQUIRE(w.send_frame(mpreg::test::tcp_ws::text, rpc("vanish", {cmd("|s", "sleep_ms", "[50]")})));
  }
  still_serving(c, "probes");
  CHECK(eventually([&] { return sessions() == 1; }, 5000ms, 50ms));
  CHECK(node.running());
}

TEST_CASE("e2e: unknown fields are ignored, as MPREG's clients expect") {
  raw_conn c(endpoint(), shared_node().url());
  REQUIRE(c.send(R"({"role":"rpc","u":"extra","client":"py","cmds":[
      {"name":"|a","fun":"echo","args":["x"],"kwargs":{},"locs":[],"hint":{"any":1}}],"trace":[1,2]})"));
  CHECK(result(c.wait_u("extra"), "extra") == json::parse(R"({"|a": "x"})"));
  // An integral timeout is a number of seconds too.
  auto f = ask(c, "int-timeout", {cmd("|a", "echo", "[1]")}, R"("timeout": 5)");
  CHECK(result(f, "int-timeout") == json::parse(R"({"|a": 1})"));
}

TEST_CASE("e2e: a forwarded call (internal-rpc) is answered with internal-answer") {
  raw_conn c(endpoint(), shared_node().url());
  REQUIRE(c.send(R"({"role":"internal-rpc","command":"add","args":[40],"kwargs":{"b":2},"results":{},"u":"ir-1"})"));
  auto f = c.wait_u("ir-1", 5000ms);
  INFO(f.dump());
  REQUIRE(f.is_object());
  CHECK(*f.find("role") == json("internal-answer"));
  CHECK(*f.find("answer") == json(42));
  CHECK((f.find("error") == nullptr || f.find("error")->is_null()));
  REQUIRE(c.send(R"({"role":"internal-rpc","command":"fail","args":["remote boom"],"kwargs":{},"results":{},"u":"ir-2"})"));
  f = c.wait_u("ir-2", 5000ms);
  INFO(f.dump());
  REQUIRE(f.is_object());
  CHECK(*f.find("role") == json("internal-answer"));
  REQUIRE(f.find("error") != nullptr);
  CHECK(*f.find("error")->find("code") == json(1003));
  CHECK(contains(f.find("error")->find("message")->as_string(), "remote boom"));
  REQUIRE(c.send(R"({"role":"internal-rpc","command":"nope","args":[],"kwargs":{},"results":{},"u":"ir-3"})"));
  f = c.wait_u("ir-3", 5000ms);
  INFO(f.dump());
  REQUIRE(f.find("error") != nullptr);
  CHECK(*f.find("error")->find("code") == json(1001));
  still_serving(c, "internal-rpc");
}

// ------------------------------------------------------------------ sizes

TEST_CASE("e2e: a 1 MiB payload round-trips") {
  raw_conn c(endpoint(), shared_node().url());
  std::string payload(1u << 20, 'a');
  for (std::size_t i = 0; i < payload.size(); i += 97)
    payload[i] = static_cast<char>('a' + (i / 97) % 26);
  auto f = ask(c, "mib", {cmd("|e", "echo", "[" + q(payload) + "]")}, "", 20000ms);
  auto r = result(f, "mib");
  REQUIRE(r.find("|e") != nullptr);
  CHECK(r.find("|e")->as_string() == payload);
  // A 1 MiB result produced by a function, consumed by a reference.
  f = ask(c, "mib2", {cmd("|b", "big", "[1048576]"), cmd("|e", "echos", R"(["|b", 1])")}, "",
          20000ms);
  r = result(f, "mib2");
  REQUIRE(r.find("|e") != nullptr);
  CHECK(r.find("|e")->as_array().at(0).as_string() == std::string(1u << 20, 'x'));
  CHECK(r.find("|e")->as_array().at(1) == json(1));
}

TEST_CASE("e2e: a frame over --max-message-size closes only that connection") {
  auto node = start_node({"--max-message-size", "65536"});
  raw_conn victim(endpoint(), node.url());
  raw_conn bystander(endpoint(), node.url());
  still_serving(victim, "before");
  std::string huge(100000, 'z');
  victim.send(rpc("huge", {cmd("|e", "echo", "[" + q(huge) + "]")}));
  // Refused with 1006 or a clean close, never a crash; either way the
  // request gets no result.
  bool closed = victim.wait_closed(5000ms);
  if (!closed) {
    error_of(victim.wait_u("huge", 1000ms), 1006, "huge");
  } else {
    MESSAGE("closed: " << victim.close_reason());
    CHECK(victim.count_u("huge") <= 1);
    auto answer = victim.wait_u("huge", 10ms);
    CHECK((answer.is_null() || answer.find("error")->is_object()));
  }
  CHECK(node.running());
  still_serving(bystander, "bystander");
  raw_conn fresh(endpoint(), node.url());
  still_serving(fresh, "fresh");
  // Just under the limit is served.
  std::string fits(60000, 'f');
  auto f = ask(fresh, "fits", {cmd("|e", "echo", "[" + q(fits) + "]")});
  CHECK(result(f, "fits").find("|e")->as_string() == fits);
  CHECK(node.terminate() == 0);
}

TEST_CASE("e2e: reference amplification past --max-message-size fails with 1003") {
  auto node = start_node({"--max-message-size", "65536"});
  raw_conn c(endpoint(), node.url());
  // b = echos(a, a), c = echos(b, b), ... doubles each step: 2^40 copies.
  std::vector<std::string> cmds{cmd("s0", "echo", R"(["0123456789abcdef0123456789abcdef"])")};
  for (int i = 1; i <= 40; ++i) {
    auto prev = q("s" + std::to_string(i - 1));
    cmds.push_back(cmd("s" + std::to_string(i), "echos", "[" + prev + "," + prev + "]"));
  }
  auto t0 = steady::now();
  auto e = error_of(ask(c, "amp", cmds, "", 10000ms), 1003, "amp");
  CHECK(contains(message_of(e), "result too large"));
  CHECK(ms_since(t0) < 3000);
  still_serving(c, "amp");
  // A function result over the limit.
  e = error_of(ask(c, "bigres", {cmd("|b", "big", "[100000]")}), 1003, "bigres");
  CHECK(contains(message_of(e), "result too large"));
  CHECK(contains(message_of(e), "|b"));
  // Sinks each under the limit whose sum is over it: the response is too large.
  e = error_of(ask(c, "sum", {cmd("|a", "big", "[30000]"), cmd("|b", "big", "[30000]"),
                              cmd("|c", "big", "[30000]")}),
               1003, "sum");
  CHECK(contains(message_of(e), "result too large"));
  CHECK(contains(message_of(e), "'|a', '|b', '|c'"));
  // The limit is the whole frame's: a result that fits with a frame that
  // does not fails too, and one that fits exactly is answered.
  // (Each u is 5 bytes: the frames around the results are the same size.)
  const std::size_t around = std::string(R"({"r":{"|b":""},"error":null,"u":"edge1"})").size();
  e = error_of(ask(c, "edge1", {cmd("|b", "big", "[" + std::to_string(65536 - around + 1) + "]")}),
               1003, "edge1");
  CHECK(contains(message_of(e), "'|b'"));
  auto exact = ask(c, "edge2", {cmd("|b", "big", "[" + std::to_string(65536 - around) + "]")});
  CHECK(result(exact, "edge2").find("|b")->as_string().size() == 65536 - around);
  still_serving(c, "sizes");
  auto status = mpreg::test::http_get(node.port(), "/health");
  CHECK(status.first == 200);
  CHECK(node.terminate() == 0);
}

TEST_CASE("e2e: binary, fragmented and control frames") {
  using mpreg::test::tcp_ws;
  tcp_ws w(shared_node().port());
  // Nodes accept binary frames and answer in text frames.
  REQUIRE(w.send_frame(tcp_ws::binary, rpc("bin", {cmd("|a", "echo", R"(["b"])")})));
  auto m = w.read_message();
  CHECK(m.op == tcp_ws::text);
  CHECK(result(raw_conn::parse(m.payload), "bin") == json::parse(R"({"|a": "b"})"));
  // A message in three fragments.
  auto text = rpc("frag", {cmd("|a", "echos", R"(["x", "y", "z"])")});
  auto third = text.size() / 3;
  REQUIRE(w.send_frame(tcp_ws::text, text.substr(0, third), false));
  REQUIRE(w.send_frame(tcp_ws::continuation, text.substr(third, third), false));
  REQUIRE(w.send_frame(tcp_ws::continuation, text.substr(2 * third), true));
  m = w.read_message();
  CHECK(m.op == tcp_ws::text);
  CHECK(result(raw_conn::parse(m.payload), "frag") == json::parse(R"({"|a": ["x", "y", "z"]})"));
  // Ping is answered with pong.
  REQUIRE(w.send_frame(tcp_ws::ping, "are you there"));
  m = w.read_message();
  CHECK(m.op == tcp_ws::pong);
  CHECK(m.payload == "are you there");
  // Invalid UTF-8 (in a binary frame, so the WebSocket layer lets it through):
  // not JSON text, so 1006, with the u read before it; the connection stays.
  REQUIRE(w.send_frame(tcp_ws::binary,
                       "{\"role\":\"rpc\",\"u\":\"utf\",\"cmds\":[{\"name\":\"a\",\"fun\":\"echo\","
                       "\"args\":[\"\xff\xfe\"]}]}"));
  m = w.read_message();
  CHECK(m.op == tcp_ws::text);
  error_of(raw_conn::parse(m.payload), 1006, "utf");
  // A u that is itself invalid UTF-8 is never echoed.
  REQUIRE(w.send_frame(tcp_ws::binary, "{\"role\":\"rpc\",\"u\":\"\xff\",\"cmds\":[]}"));
  m = w.read_message();
  error_of(raw_conn::parse(m.payload), 1006, "unknown");
  REQUIRE(w.send_frame(tcp_ws::text, rpc("after-utf", {cmd("|a", "echo", "[1]")})));
  m = w.read_message();
  CHECK(result(raw_conn::parse(m.payload), "after-utf") == json::parse(R"({"|a": 1})"));
  // A clean close is answered with a close frame.
  REQUIRE(w.send_frame(tcp_ws::close, std::string("\x03\xe8", 2)));
  m = w.read_message();
  CHECK(m.op == tcp_ws::close);
  CHECK(tcp_ws::close_code(m) == 1000);
}

TEST_CASE("e2e: text frames must be UTF-8, also across fragments (close 1007)") {
  using mpreg::test::tcp_ws;
  auto& node = shared_node();
  {
    // "é" cut between two fragments is one valid character.
    tcp_ws w(node.port());
    auto text = rpc("split", {cmd("|a", "echo", "[\"caf\xc3\xa9 au lait, plain ASCII after it\"]")});
    auto cut = text.find('\xc3') + 1;
    REQUIRE(w.send_frame(tcp_ws::text, text.substr(0, cut), false));
    REQUIRE(w.send_frame(tcp_ws::continuation, text.substr(cut), true));
    auto m = w.read_message();
    REQUIRE(m.op == tcp_ws::text);
    CHECK(result(raw_conn::parse(m.payload), "split") ==
          json::parse("{\"|a\": \"caf\xc3\xa9 au lait, plain ASCII after it\"}"));
  }
  // Sends one text message in `fragments` on a connection of its own; the
  // node must close that connection with 1007.
  auto closed_1007 = [&](std::vector<std::string> fragments) {
    CAPTURE(fragments.size());
    tcp_ws w(node.port());
    for (std::size_t i = 0; i < fragments.size(); ++i)
      REQUIRE(w.send_frame(i == 0 ? tcp_ws::text : tcp_ws::continuation, fragments[i],
                           i + 1 == fragments.size()));
    auto m = w.read_message();
    CHECK(m.op == tcp_ws::close);
    CHECK(tcp_ws::close_code(m) == 1007);
  };
  // A character begun in one fragment and broken by ASCII in the next.
  closed_1007({"{\"role\":\"rpc\",\"u\":\"x\xc3", "abcdefghijklmnop\"}"});
  // A text message whose last fragment ends inside a character (websocketpp
  // 0.8.2 let this through as text: it checked the last frame's opcode).
  closed_1007({"{\"role\":\"rpc\",\"u\":\"y", "\xc3"});
  // A bad byte after 61 bytes of ASCII (past several 8-byte unmask steps).
  closed_1007({std::string(61, ' ') + "\"\xff\""});
  raw_conn c(endpoint(), node.url());
  still_serving(c, "after-bad-utf8");
}

TEST_CASE("e2e: deeply nested JSON is refused with 1006, never a crash") {
  raw_conn c(endpoint(), shared_node().url());
  // Reasonable nesting round-trips exactly.
  std::string deep_ok = std::string(100, '[') + "\"core\"" + std::string(100, ']');
  auto f = ask(c, "deep-ok", {cmd("|e", "echo", "[" + deep_ok + "]")});
  CHECK(result(f, "deep-ok") == json::make_object({{"|e", json::parse(deep_ok)}}));
  // 100,000 levels would overflow the stack of any recursive walk.
  constexpr std::size_t depth = 100000;
  std::string bomb = std::string(depth, '[') + std::string(depth, ']');
  REQUIRE(c.send(rpc("deep", {cmd("|e", "echo", "[" + bomb + "]")})));
  auto e = error_of(c.wait_u("deep", 10000ms), 1006, "deep");
  CHECK(contains(message_of(e), "deep"));
  std::string obj_bomb;
  for (std::size_t i = 0; i < depth; ++i)
    obj_bomb += "{\"k\":";
  obj_bomb += "1" + std::string(depth, '}');
  auto before = c.frame_count();
  REQUIRE(c.send(obj_bomb));
  REQUIRE(c.wait_frames(before + 1, 10000ms));
  error_of(c.frames()[before], 1006, "unknown");
  CHECK(shared_node().running());
  still_serving(c, "deep");
}

TEST_CASE("e2e: a very long timeout is no deadline at all") {
  raw_conn c(endpoint(), shared_node().url());
  for (auto t : {"1e12", "1e300", "86400", "1.7976931348623157e308"}) {
    CAPTURE(t);
    auto u = std::string("long-timeout-") + t;
    auto f = ask(c, u, {cmd("|s", "sleep_ms", "[20]")}, std::string("\"timeout\": ") + t, 5000ms);
    CHECK(result(f, u) == json::parse(R"({"|s": 20})"));
  }
}

namespace {
// The node's peak resident memory in KiB (VmHWM), or -1.
long peak_rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0)
      return std::atol(line.c_str() + 6);
  return -1;
}
} // namespace

TEST_CASE("e2e: many references to one large result in one command never balloon memory") {
  auto node = start_node({"--max-message-size", "65536"});
  raw_conn c(endpoint(), node.url());
  still_serving(c, "warm-up");
  long before = peak_rss_kib(node.pid());
  REQUIRE(before > 0);
  // 60 KB result, referenced 2,000 times by one command: 120 MB if built.
  std::string refs;
  for (int i = 0; i < 2000; ++i)
    refs += i ? ",\"|a\"" : "\"|a\"";
  auto t0 = steady::now();
  auto e = error_of(ask(c, "fanout", {cmd("|a", "big", "[60000]"), cmd("|b", "echos", "[" + refs + "]")},
                        "", 10000ms),
                    1003, "fanout");
  CHECK(contains(message_of(e), "too large"));
  CHECK(contains(message_of(e), "|b"));
  CHECK(ms_since(t0) < 2000);
  long after = peak_rss_kib(node.pid());
  MESSAGE("peak RSS before " << before << " KiB, after " << after << " KiB");
  CHECK(after - before < 50 * 1024); // far below the 120 MB it would take
  // Nested references count as much as top-level ones.
  e = error_of(ask(c, "fanout-nested",
                   {cmd("|a", "big", "[60000]"), cmd("|b", "show", "[[[" + refs + "]]]")}, "",
                   10000ms),
               1003, "fanout-nested");
  CHECK(contains(message_of(e), "too large"));
  // Two references to a small result are fine.
  auto f = ask(c, "fanout-ok", {cmd("|a", "big", "[1000]"), cmd("|b", "echos", R"(["|a", "|a"])")});
  CHECK(result(f, "fanout-ok").find("|b")->size() == 2);
  CHECK(node.terminate() == 0);
}

TEST_CASE("e2e: a client that stops reading is cut off; the node keeps serving") {
  using mpreg::test::tcp_ws;
  auto node = start_node({"--max-message-size", "65536"});
  raw_conn other(endpoint(), node.url());
  tcp_ws stalled(node.port());
  // 600 answers of 60 KB = 36 MB, never read.
  for (int i = 0; i < 600; ++i)
    if (!stalled.send_frame(tcp_ws::text, rpc("s" + std::to_string(i), {cmd("|b", "big", "[60000]")})))
      break;
  // Others are served meanwhile (a liveness bound, not a speed test: about
  // 0.3 s under ASan; it once took 2.1 s with a build running beside it).
  auto t0 = steady::now();
  still_serving(other, "while-stalled");
  CHECK(ms_since(t0) < 5000);
  // The node gives up on the stalled client without any help from it (no
  // read, no close reply): its session ends, and with it the connection.
  auto sessions = [&] {
    auto s = mpreg::test::http_get(node.port(), "/status");
    if (s.first != 200)
      return json{};
    auto j = json::parse(s.second);
    return j.find("sessions") ? *j.find("sessions") : json{};
  };
  CHECK(sessions() == json(2));
  CHECK(eventually([&] { return sessions() == json(1); }, 15000ms, 100ms));
  CHECK(stalled.drain_until_eof(5000ms));
  long peak = peak_rss_kib(node.pid());
  MESSAGE("peak RSS " << peak << " KiB");
#if defined(__SANITIZE_ADDRESS__)
  // ASan's shadow memory and quarantine keep freed buffers resident for a while.
  CHECK(peak < 600 * 1024);
#else
  CHECK(peak < 200 * 1024);
#endif
  still_serving(other, "after-stalled");
  CHECK(node.terminate() == 0);
}

TEST_CASE("e2e: the node's threads are named after their job") {
  auto& node = shared_node();
  raw_conn c(endpoint(), node.url());
  // A pool function, so the pool has started a thread.
  auto f = ask(c, "names", {cmd("|s", "sleep_ms", "[1]")});
  REQUIRE(result(f, "names") == json::parse(R"({"|s": 1})"));
  std::set<std::string> names;
  auto tasks = "/proc/" + std::to_string(node.pid()) + "/task";
  for (const auto& t : std::filesystem::directory_iterator(tasks)) {
    std::ifstream in(t.path() / "comm");
    std::string name;
    std::getline(in, name);
    names.insert(name);
  }
  CAPTURE(names.size());
  // mpreg-node's first scheduler worker runs the listener's and the peer
  // links' I/O loop between actors: no I/O thread of its own.
  CHECK(names.count("mpreg.io+actors") == 1);
  CHECK(names.count("mpreg.io") == 0);
  CHECK(names.count("mpreg.pool") == 1); // registered functions
}

// ------------------------------------------------------------------ lifecycle

TEST_CASE("e2e: the deadline answers 1007 while the function still runs") {
  raw_conn c(endpoint(), shared_node().url());
  auto t0 = steady::now();
  REQUIRE(c.send(rpc("deadline", {cmd("|s", "sleep_ms", "[5000]")}, R"("timeout": 0.2)")));
  auto f = c.wait_u("deadline", 3000ms);
  auto ms = ms_since(t0);
  auto e = error_of(f, 1007, "deadline");
  CHECK(ms >= 150);
  CHECK(ms < 1000);
  CHECK(contains(e.find("details")->dump(), "|s"));
  // The node is healthy and answers at once, while sleep_ms goes on.
  t0 = steady::now();
  still_serving(c, "after-deadline");
  CHECK(ms_since(t0) < 500);
  // A chain whose second step misses the deadline.
  e = error_of(ask(c, "deadline2", {cmd("|a", "sleep_ms", "[100]"), cmd("|b", "sleep_ms", "[3000]"),
                                    cmd("|c", "echos", R"(["|a", "|b"])")},
                   R"("timeout": 0.5)", 3000ms),
               1007, "deadline2");
  // Only one answer ever arrives for it, even after the function returns.
  std::this_thread::sleep_for(100ms);
  CHECK(c.count_u("deadline") == 1);
}

TEST_CASE("e2e: a client that disconnects with requests in flight does not disturb the node") {
  auto& node = shared_node();
  raw_conn other(endpoint(), node.url());
  {
    raw_conn leaver(endpoint(), node.url());
    for (int i = 0; i < 5; ++i)
      REQUIRE(leaver.send(rpc("leave-" + std::to_string(i), {cmd("|s", "sleep_ms", "[1500]")})));
    still_serving(leaver, "leaver"); // the sleeps are running now
    leaver.close();
    REQUIRE(leaver.wait_closed(5000ms));
  }
  auto t0 = steady::now();
  still_serving(other, "other");
  CHECK(ms_since(t0) < 500);
  // The session of the closed connection goes away: /status counts open sessions.
  bool gone = eventually(
    [&] {
      auto s = mpreg::test::http_get(node.port(), "/status");
      if (s.first != 200)
        return false;
      auto j = json::parse(s.second);
      return j.find("sessions") && *j.find("sessions") == json(1); // only `other`
    },
    5000ms, 50ms);
  CHECK(gone);
  // After the sleeps end (their results go nowhere) the node still serves.
  std::this_thread::sleep_for(1600ms);
  still_serving(other, "other-later");
  CHECK(node.running());
  CHECK(other.frame_count() == 2);
}

TEST_CASE("e2e: exactly one response per request, whatever the outcome") {
  raw_conn c(endpoint(), shared_node().url());
  std::vector<std::string> us;
  for (int i = 0; i < 60; ++i) {
    auto u = "once-" + std::to_string(i);
    us.push_back(u);
    std::string frame;
    switch (i % 6) {
      case 0: frame = rpc(u, {cmd("|a", "echo", "[1]")}); break;
      case 1: frame = rpc(u, {cmd("|a", "fail", R"(["x"])")}); break;
      case 2: frame = rpc(u, {cmd("|a", "nope")}); break;
      case 3: frame = rpc(u, {cmd("|a", "echo", R"(["|a2"])"), cmd("|a2", "echo", R"(["|a"])")}); break;
      case 4: frame = rpc(u, {cmd("|a", "sleep_ms", "[300]")}, R"("timeout": 0.05)"); break;
      default: frame = rpc(u, {cmd("|a", "add", R"(["x", 1])")}); break;
    }
    REQUIRE(c.send(frame));
  }
  REQUIRE(c.wait_frames(us.size(), 10000ms));
  std::this_thread::sleep_for(500ms); // late duplicates (e.g. after a deadline) would show now
  CHECK(c.frame_count() == us.size());
  for (const auto& u : us)
    CHECK(c.count_u(u) == 1);
}

TEST_CASE("e2e: the shared node is healthy at the end and stops with exit code 0") {
  auto& node = shared_node();
  auto h = mpreg::test::http_get(node.port(), "/health");
  CHECK(h.first == 200);
  REQUIRE(node.running());
  auto t0 = steady::now();
  CHECK(node.terminate(5000ms) == 0);
  CHECK(ms_since(t0) < 5000);
  CHECK(node.stdout_text().empty()); // exactly one line on stdout: the ready line
}
