// request_graph (src/jobs/request_graph.hpp) against PROTOCOL.md
// "References and the dependency graph" and "Response" (the sink rule).
#include <doctest/doctest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "jobs/request_graph.hpp"
#include "protocol/codec.hpp"

using namespace mpreg;

namespace {

// A command with args and kwargs written as JSON text.
command C(std::string name, std::string fun, const char* args = "[]",
          const char* kwargs = "{}") {
  command c;
  c.name = std::move(name);
  c.fun = std::move(fun);
  c.args = json::parse(args).as_array();
  c.kwargs = json::parse(kwargs).as_object();
  return c;
}

request R(std::vector<command> cmds) {
  request r;
  r.u = "graph-test";
  r.cmds = std::move(cmds);
  return r;
}

std::vector<std::string> names(const request& r, std::vector<std::size_t> idx) {
  std::vector<std::string> out;
  for (auto i : idx)
    out.push_back(r.cmds[i].name);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> deps(const request& r, const request_graph& g, std::size_t i) {
  return names(r, g.dependencies(i));
}

std::vector<std::string> sinks(const request& r, const request_graph& g) {
  std::vector<std::size_t> s;
  for (std::size_t i = 0; i < g.size(); ++i)
    if (g.is_sink(i))
      s.push_back(i);
  return names(r, s);
}

using strings = std::vector<std::string>;

// The error a graph construction throws (fails the test if none).
rpc_error graph_error(const request& r) {
  try {
    request_graph g(r);
  } catch (const protocol::protocol_error& e) {
    return e.error;
  }
  FAIL("no protocol_error for an invalid request");
  return {};
}

// Runs the graph like the job does, with `echo`/`echos` semantics, in
// dependency order: returns every command's result.
std::vector<std::optional<json>> run_echo(const request& r, const request_graph& g) {
  std::vector<std::optional<json>> results(g.size());
  std::vector<std::size_t> waiting(g.size());
  std::vector<std::size_t> ready = g.roots();
  for (std::size_t i = 0; i < g.size(); ++i)
    waiting[i] = g.dependencies(i).size();
  while (!ready.empty()) {
    auto i = ready.back();
    ready.pop_back();
    for (auto d : g.dependencies(i))
      REQUIRE(results[d].has_value()); // never before its producers
    auto [args, kwargs] = g.resolve(i, results);
    if (r.cmds[i].fun == "echo")
      results[i] = args.empty() ? json(kwargs) : args.at(0);
    else
      results[i] = json(args);
    for (auto u : g.dependents(i))
      if (--waiting[u] == 0)
        ready.push_back(u);
  }
  return results;
}

// The response `r` object: sink name -> result.
json response_of(const request& r) {
  request_graph g(r);
  auto results = run_echo(r, g);
  json out = json::make_object();
  for (std::size_t i = 0; i < g.size(); ++i) {
    REQUIRE(results[i].has_value());
    if (g.is_sink(i))
      out[r.cmds[i].name] = *results[i];
  }
  return out;
}

} // namespace

TEST_CASE("graph: a single command is a root and a sink") {
  auto r = R({C("first", "echo", R"(["hi there!"])")});
  request_graph g(r);
  CHECK(g.size() == 1);
  CHECK(g.roots() == std::vector<std::size_t>{0});
  CHECK(g.is_sink(0));
  CHECK(g.dependencies(0).empty());
  CHECK(response_of(r) == json::parse(R"({"first": "hi there!"})"));
}

TEST_CASE("graph: MPREG README examples give the documented sinks and values") {
  SUBCASE("first/second without pipes") {
    auto r = R({C("first", "echo", R"(["hi there!"])"), C("second", "echo", R"(["first"])")});
    CHECK(response_of(r) == json::parse(R"({"second": "hi there!"})"));
  }
  SUBCASE("|first |second |third") {
    auto r = R({C("|first", "echo", R"(["hi there!"])"), C("|second", "echo", R"(["|first"])"),
                C("|third", "echos", R"(["|first", "AND ME TOO"])")});
    request_graph g(r);
    CHECK(deps(r, g, 1) == strings{"|first"});
    CHECK(deps(r, g, 2) == strings{"|first"});
    CHECK(sinks(r, g) == strings{"|second", "|third"});
    CHECK(response_of(r) ==
          json::parse(R"({"|second": "hi there!", "|third": ["hi there!", "AND ME TOO"]})"));
  }
  SUBCASE("3-returns-1") {
    auto r = R({C("|first", "echo", R"(["hi there!"])"), C("|second", "echo", R"(["|first"])"),
                C("|third", "echos", R"(["|first", "|second", "AND ME TOO"])")});
    request_graph g(r);
    CHECK(deps(r, g, 2) == strings{"|first", "|second"});
    CHECK(sinks(r, g) == strings{"|third"});
    CHECK(response_of(r) ==
          json::parse(R"({"|third": ["hi there!", "hi there!", "AND ME TOO"]})"));
  }
  SUBCASE("4-returns-1") {
    auto r = R({C("|first", "echo", R"(["hi there!"])"), C("|second", "echo", R"(["|first"])"),
                C("|third", "echos", R"(["|first", "|second", "AND ME TOO"])"),
                C("|4th", "echo", R"(["|third"])")});
    request_graph g(r);
    CHECK(sinks(r, g) == strings{"|4th"});
    CHECK(response_of(r) == json::parse(R"({"|4th": ["hi there!", "hi there!", "AND ME TOO"]})"));
  }
}

TEST_CASE("graph: references nested anywhere in args are detected and resolved") {
  auto r = R({C("|a", "echo", R"([5])"),
              C("|b", "echos", R"([[1, ["|a", {"k": "|a", "deep": [{"x": ["|a"]}]}]], "lit"])")});
  request_graph g(r);
  CHECK(deps(r, g, 1) == strings{"|a"});
  CHECK(g.dependencies(1).size() == 1); // several uses, one dependency
  CHECK(g.dependents(0) == std::vector<std::size_t>{1});
  CHECK(g.roots() == std::vector<std::size_t>{0});
  std::vector<std::optional<json>> results(2);
  results[0] = json("RESULT");
  auto [args, kwargs] = g.resolve(1, results);
  CHECK(json(args) ==
        json::parse(R"([[1, ["RESULT", {"k": "RESULT", "deep": [{"x": ["RESULT"]}]}]], "lit"])"));
  CHECK(kwargs.empty());
}

TEST_CASE("graph: references in kwargs values (nested too), never in keys") {
  auto r = R({C("|a", "echo", R"([1])"), C("|b", "echo", R"([2])"), C("|c", "echo", R"([3])"),
              C("|d", "show", "[]",
                R"({"x": "|a", "nested": {"y": ["|b", {"z": "|c"}]}, "|a": "key is literal"})")});
  request_graph g(r);
  CHECK(deps(r, g, 3) == strings{"|a", "|b", "|c"});
  std::vector<std::optional<json>> results(4);
  results[0] = json(10);
  results[1] = json::parse(R"({"b": true})");
  results[2] = json::make_array({"c"});
  auto [args, kwargs] = g.resolve(3, results);
  CHECK(args.empty());
  CHECK(json(kwargs) == json::parse(R"({"x": 10, "nested": {"y": [{"b": true}, {"z": ["c"]}]},
                                        "|a": "key is literal"})"));
}

TEST_CASE("graph: object keys, substrings and numbers are never references") {
  auto r = R({C("|a", "echo", R"([1])"), C("1", "echo", R"([2])"), C("true", "echo", R"([3])"),
              C("|z", "echos",
                R"([{"|a": 0}, "|a ", " |a", "x|a", "|ab", "|A", 1, 1.0, true, null, ["||a"]])",
                R"({"k": {"|a": "1"}})")});
  request_graph g(r);
  // Only the exact string "1" (a kwargs value) refers to the command named "1".
  CHECK(deps(r, g, 3) == strings{"1"});
  CHECK(sinks(r, g) == strings{"true", "|a", "|z"});
  auto results = run_echo(r, g);
  CHECK(*results[3] ==
        json::parse(R"([{"|a": 0}, "|a ", " |a", "x|a", "|ab", "|A", 1, 1.0, true, null, ["||a"]])"));
  auto [args, kwargs] = g.resolve(3, results);
  CHECK(json(kwargs) == json::parse(R"({"k": {"|a": 2}})"));
}

TEST_CASE("graph: a command's own name in its own arguments is a literal") {
  SUBCASE("call(\"echo\", \"echo\")") {
    auto r = R({C("echo", "echo", R"(["echo"])")});
    request_graph g(r);
    CHECK(g.dependencies(0).empty());
    CHECK(response_of(r) == json::parse(R"({"echo": "echo"})"));
  }
  SUBCASE("nested self name, and a real reference beside it") {
    auto r = R({C("|a", "echo", R"(["A"])"),
                C("|b", "echos", R"([["|b", {"k": "|b"}], "|a"])", R"({"q": "|b"})")});
    request_graph g(r);
    CHECK(deps(r, g, 1) == strings{"|a"});
    std::vector<std::optional<json>> results(2);
    results[0] = json("A!");
    auto [args, kwargs] = g.resolve(1, results);
    CHECK(json(args) == json::parse(R"([["|b", {"k": "|b"}], "A!"])"));
    CHECK(json(kwargs) == json::parse(R"({"q": "|b"})"));
  }
}

TEST_CASE("graph: a consumer may be listed before its producer") {
  auto r = R({C("|c", "echos", R"(["|b", "|a"])"), C("|b", "echo", R"(["|a"])"),
              C("|a", "echo", R"(["start"])")});
  request_graph g(r);
  CHECK(g.roots() == std::vector<std::size_t>{2});
  CHECK(deps(r, g, 0) == strings{"|a", "|b"});
  CHECK(deps(r, g, 1) == strings{"|a"});
  CHECK(sinks(r, g) == strings{"|c"});
  CHECK(response_of(r) == json::parse(R"({"|c": ["start", "start"]})"));
}

TEST_CASE("graph: sinks keep independent branches (A->B plus C gives {B, C})") {
  auto r = R({C("A", "echo", R"([1])"), C("B", "echo", R"(["A"])"), C("C", "echo", R"([3])")});
  request_graph g(r);
  CHECK(sinks(r, g) == strings{"B", "C"});
  CHECK(response_of(r) == json::parse(R"({"B": 1, "C": 3})"));
  auto roots = g.roots();
  std::sort(roots.begin(), roots.end());
  CHECK(roots == std::vector<std::size_t>{0, 2});
}

TEST_CASE("graph: every command independent: all are roots and sinks") {
  auto r = R({C("a", "echo", "[1]"), C("b", "echo", "[2]"), C("c", "echo", "[3]")});
  request_graph g(r);
  CHECK(g.roots().size() == 3);
  CHECK(sinks(r, g) == strings{"a", "b", "c"});
}

TEST_CASE("graph: diamonds and fan-in") {
  // a -> b, a -> c, (b, c) -> d
  auto r = R({C("a", "echo", "[0]"), C("b", "echos", R"(["a"])"), C("c", "echos", R"(["a", "a"])"),
              C("d", "echos", R"(["b", "c"])")});
  request_graph g(r);
  CHECK(g.dependents(0).size() == 2);
  CHECK(sinks(r, g) == strings{"d"});
  CHECK(response_of(r) == json::parse(R"({"d": [[0], [0, 0]]})"));

  std::vector<command> cmds;
  std::string inputs = "[";
  for (int i = 0; i < 10; ++i) {
    auto n = "|x" + std::to_string(i);
    cmds.push_back(C(n, "echo", ("[" + std::to_string(i) + "]").c_str()));
    inputs += (i ? ", \"" : "\"") + n + "\"";
  }
  inputs += "]";
  cmds.push_back(C("|sum", "echos", ("[" + inputs + "]").c_str()));
  auto fan = R(std::move(cmds));
  request_graph fg(fan);
  CHECK(fg.roots().size() == 10);
  CHECK(fg.dependencies(10).size() == 10);
  CHECK(sinks(fan, fg) == strings{"|sum"});
  CHECK(response_of(fan) == json::parse(R"({"|sum": [[0,1,2,3,4,5,6,7,8,9]]})"));
}

TEST_CASE("graph: long dependency lists list each command once, in first-use order") {
  // 50,000 inputs named twice each by one sink, plus its own name (a
  // literal): the list must hold each input once. Past a short list the
  // graph marks inputs instead of scanning (a scan per reference made such
  // a request cost 10^9 comparisons on the node's actor thread).
  const int n = 50000;
  std::vector<command> cmds;
  json::array refs;
  for (int i = 0; i < n; ++i) {
    auto name = "i" + std::to_string(i);
    cmds.push_back(C(name, "echo", "[0]"));
    refs.emplace_back(name);
  }
  for (int i = n - 1; i >= 0; --i)
    refs.emplace_back("i" + std::to_string(i));
  refs.emplace_back("sink");
  command sink;
  sink.name = "sink";
  sink.fun = "echos";
  sink.args = std::move(refs);
  cmds.push_back(std::move(sink));
  // A second user whose short list crosses the limit after the first one
  // has marked the same inputs.
  cmds.push_back(C("again", "echos", R"(["i1", "i2", "i1", "i3", "i4", "i5", "i6", "i7", "i8",
      "i9", "i10", "i11", "i12", "i13", "i14", "i15", "i16", "i17", "i2", "i18", "i17"])"));
  auto r = R(std::move(cmds));
  request_graph g(r);
  const auto& deps = g.dependencies(n);
  REQUIRE(deps.size() == static_cast<std::size_t>(n));
  bool in_order = true;
  for (int i = 0; i < n; ++i)
    in_order = in_order && deps[static_cast<std::size_t>(i)] == static_cast<std::size_t>(i);
  CHECK(in_order);
  std::vector<std::size_t> expected;
  for (std::size_t i = 1; i <= 18; ++i)
    expected.push_back(i);
  CHECK(g.dependencies(n + 1) == expected);
  CHECK(g.dependents(1).size() == 2);
}

TEST_CASE("graph: duplicate names are invalid (1006, details name it)") {
  auto e = graph_error(R({C("|a", "echo", "[1]"), C("|b", "echo", "[2]"), C("|a", "echo", "[3]")}));
  CHECK(e.code == 1006);
  CHECK(e.message.find("|a") != std::string::npos);
  REQUIRE(e.details.find("name") != nullptr);
  CHECK(*e.details.find("name") == json("|a"));
}

TEST_CASE("graph: cycles are invalid (1006, details name the commands)") {
  SUBCASE("two commands") {
    auto e = graph_error(R({C("|a", "echo", R"(["|b"])"), C("|b", "echo", R"(["|a"])")}));
    CHECK(e.code == 1006);
    CHECK(e.message.find("cycle") != std::string::npos);
    REQUIRE(e.details.find("cycle") != nullptr);
    auto c = e.details.find("cycle")->as_array();
    CHECK(c.size() == 2);
    CHECK(std::count(c.begin(), c.end(), json("|a")) == 1);
    CHECK(std::count(c.begin(), c.end(), json("|b")) == 1);
  }
  SUBCASE("three commands, through nested args and kwargs") {
    auto e = graph_error(R({C("|ok", "echo", "[1]"), C("|a", "echo", R"([["|c"]])"),
                            C("|b", "echo", "[]", R"({"arg": "|a"})"),
                            C("|c", "echo", R"([{"k": "|b"}])")}));
    CHECK(e.code == 1006);
    auto c = e.details.find("cycle")->as_array();
    CHECK(c.size() == 3);
    CHECK(std::count(c.begin(), c.end(), json("|ok")) == 0);
  }
  SUBCASE("a cycle with a command hanging off it") {
    auto e = graph_error(R({C("|a", "echo", R"(["|b"])"), C("|b", "echo", R"(["|a"])"),
                            C("|t", "echo", R"(["|a"])")}));
    CHECK(e.code == 1006);
    auto c = e.details.find("cycle")->as_array();
    CHECK(std::count(c.begin(), c.end(), json("|a")) == 1);
    CHECK(std::count(c.begin(), c.end(), json("|b")) == 1);
  }
}

TEST_CASE("graph: a long chain resolves in order") {
  std::vector<command> cmds;
  cmds.push_back(C("s0", "echo", R"(["seed"])"));
  for (int i = 1; i < 200; ++i)
    cmds.push_back(C("s" + std::to_string(i), "echo",
                     ("[\"s" + std::to_string(i - 1) + "\"]").c_str()));
  std::reverse(cmds.begin(), cmds.end()); // consumers first
  auto r = R(std::move(cmds));
  request_graph g(r);
  CHECK(g.roots().size() == 1);
  CHECK(sinks(r, g) == strings{"s199"});
  CHECK(response_of(r) == json::parse(R"({"s199": "seed"})"));
}

TEST_CASE("graph: resolve leaves commands without dependencies untouched") {
  auto r = R({C("|a", "echos", R"(["|nope", {"|a": "|a"}])", R"({"k": [1, 2]})")});
  request_graph g(r);
  std::vector<std::optional<json>> results(1);
  auto [args, kwargs] = g.resolve(0, results);
  CHECK(json(args) == json::parse(R"(["|nope", {"|a": "|a"}])"));
  CHECK(json(kwargs) == json::parse(R"({"k": [1, 2]})"));
}

TEST_CASE("graph: resolved_size counts each reference occurrence without building") {
  auto r = R({C("|a", "echo", R"(["x"])"), C("|b", "echo", "[1]"),
              C("|c", "echos", R"(["|a", ["|a", {"k": "|a"}], "lit", 5])", R"({"kw": "|b"})")});
  request_graph g(r);
  std::vector<std::size_t> sizes{1000, 7, 0};
  std::vector<std::optional<json>> results(3);
  results[0] = json(std::string(998, 'x')); // encodes to 1000 bytes
  results[1] = json(1);
  auto [args, kwargs] = g.resolve(2, results);
  // Three uses of |a, one of |b, plus the literal parts.
  auto size = g.resolved_size(2, sizes, 1u << 20);
  CHECK(size >= 3000 + 7);
  CHECK(size <= 3000 + 7 + 80);
  CHECK(size >= json(args).dump().size() + json(kwargs).dump().size() - 24);
  // Past the limit it stops early and says so.
  CHECK(g.resolved_size(2, sizes, 2500) > 2500);
  // A command without references measures its literals only.
  auto lit = g.resolved_size(0, sizes, 1u << 20);
  CHECK(lit >= 3);
  CHECK(lit < 20);
  // Its own name inside its arguments is a literal, not its (absent) result.
  auto self = R({C("|s", "echos", R"(["|s", "|s"])")});
  request_graph sg(self);
  CHECK(sg.resolved_size(0, std::vector<std::size_t>{999999}, 1000) < 100);
}
