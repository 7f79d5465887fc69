// The typed adapter (include/mpreg/function.hpp): conversions of every listed
// type, optional parameters, kwargs by params, and errors that name the
// argument.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mpreg/error.hpp"
#include "mpreg/function.hpp"

using namespace mpreg;

namespace {

json::array A(const char* text) {
  return json::parse(text).as_array();
}
json::object K(const char* text) {
  return json::parse(text).as_object();
}

// Calls f and returns the argument_error text (fails when nothing is thrown).
std::string arg_error(raw_function& f, const char* args, const char* kwargs = "{}") {
  try {
    f(A(args), K(kwargs));
  } catch (const argument_error& e) {
    return e.what();
  }
  FAIL("no argument_error for args " << args << " kwargs " << kwargs);
  return {};
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

struct point {
  int x = 0;
  int y = 0;
};

} // namespace

namespace mpreg {
template <>
struct json_traits<point> {
  static point from_json(const json& j) {
    return point{from_json_value<int>(*j.find("x")), from_json_value<int>(*j.find("y"))};
  }
  static json to_json(const point& p) { return json::make_object({{"x", p.x}, {"y", p.y}}); }
};
} // namespace mpreg

TEST_CASE("function: integers of every width, with range checks") {
  auto f8 = make_function([](std::int8_t v) { return v; });
  CHECK(f8(A("[-128]"), {}) == json(-128));
  CHECK(contains(arg_error(f8, "[128]"), "argument 1"));
  CHECK(contains(arg_error(f8, "[128]"), "out of range"));
  auto fu8 = make_function([](std::uint8_t v) { return v; });
  CHECK(fu8(A("[255]"), {}) == json(255));
  CHECK(contains(arg_error(fu8, "[256]"), "out of range"));
  CHECK(contains(arg_error(fu8, "[-1]"), "argument 1"));
  auto f16 = make_function([](short v) { return v; });
  CHECK(f16(A("[-32768]"), {}) == json(-32768));
  CHECK(contains(arg_error(f16, "[40000]"), "out of range"));
  auto f32 = make_function([](int v) { return v * 2; });
  CHECK(f32(A("[21]"), {}) == json(42));
  CHECK(contains(arg_error(f32, "[3000000000]"), "out of range"));
  auto f64 = make_function([](std::int64_t v) { return v; });
  CHECK(f64(A("[-9223372036854775808]"), {}) == json(std::numeric_limits<std::int64_t>::min()));
  auto fu64 = make_function([](std::uint64_t v) { return v; });
  CHECK(fu64(A("[18446744073709551615]"), {}) ==
        json(std::numeric_limits<std::uint64_t>::max()));
  CHECK(fu64(A("[18446744073709551615]"), {}).dump() == "18446744073709551615");
  auto fsz = make_function([](std::size_t v) { return v + 1; });
  CHECK(fsz(A("[41]"), {}) == json(42));
}

TEST_CASE("function: integers accept integral doubles and refuse fractions and strings") {
  auto f = make_function([](int v) { return v; });
  CHECK(f(A("[3.0]"), {}) == json(3));
  auto e = arg_error(f, "[3.5]");
  CHECK(contains(e, "argument 1"));
  CHECK(contains(e, "integer"));
  CHECK(contains(arg_error(f, R"(["3"])"), "argument 1"));
  CHECK(contains(arg_error(f, "[null]"), "argument 1"));
  CHECK(contains(arg_error(f, "[true]"), "argument 1"));
  CHECK(contains(arg_error(f, "[1e300]"), "argument 1"));
  // At the edges: 2^63 and 2^64 as doubles are one past the largest
  // integers (their conversion would be undefined behaviour).
  auto f64 = make_function([](long long v) { return v; });
  CHECK(contains(arg_error(f64, "[9223372036854775808.0]"), "out of range"));
  CHECK(f64(A("[9223372036854774784.0]"), {}) == json(9223372036854774784LL));
  CHECK(f64(A("[-9223372036854775808.0]"), {}).dump() == "-9223372036854775808");
  auto fu = make_function([](unsigned long long v) { return v; });
  CHECK(contains(arg_error(fu, "[18446744073709551616]"), "out of range"));
  CHECK(contains(arg_error(fu, "[1.8446744073709552e19]"), "out of range"));
  CHECK(contains(arg_error(fu, "[-1.0]"), "out of range"));
  auto f32 = make_function([](int v) { return v; });
  CHECK(contains(arg_error(f32, "[2147483648.0]"), "out of range"));
  CHECK(f32(A("[2147483647.0]"), {}) == json(2147483647));
}

TEST_CASE("function: bool, floating point, string") {
  auto fb = make_function([](bool b) { return !b; });
  CHECK(fb(A("[true]"), {}) == json(false));
  CHECK(contains(arg_error(fb, "[1]"), "argument 1"));
  auto fd = make_function([](double d) { return d / 2; });
  CHECK(fd(A("[3]"), {}) == json(1.5));
  CHECK(fd(A("[18446744073709551615]"), {}).is_number());
  CHECK(contains(arg_error(fd, R"(["x"])"), "argument 1"));
  auto ff = make_function([](float d) { return d; });
  CHECK(ff(A("[0.5]"), {}) == json(0.5));
  auto fs = make_function([](std::string a, const std::string& b) { return a + b; });
  CHECK(fs(A(R"(["ab", "cd"])"), {}) == json("abcd"));
  CHECK(fs(A(R"(["\u00e9", "\u65e5"])"), {}) == json("\xc3\xa9\xe6\x97\xa5"));
  auto e = arg_error(fs, R"(["ab", 3])");
  CHECK(contains(e, "argument 2"));
  CHECK(contains(e, "string"));
}

TEST_CASE("function: vectors, maps, nested containers and json") {
  auto fv = make_function([](const std::vector<long>& xs) {
    long s = 0;
    for (auto x : xs)
      s += x;
    return s;
  });
  CHECK(fv(A("[[1, 2, 3]]"), {}) == json(6));
  CHECK(fv(A("[[]]"), {}) == json(0));
  auto e = arg_error(fv, R"([[1, "two", 3]])");
  CHECK(contains(e, "argument 1"));
  CHECK(contains(e, "element 1"));
  CHECK(contains(arg_error(fv, R"([{"a": 1}])"), "argument 1"));

  auto fm = make_function([](const std::map<std::string, int>& m) {
    std::map<std::string, int> out;
    for (const auto& [k, v] : m)
      out[k] = v * 10;
    return out;
  });
  CHECK(fm(A(R"([{"a": 1, "b": 2}])"), {}) == json::parse(R"({"a": 10, "b": 20})"));
  e = arg_error(fm, R"([{"a": 1, "b": "x"}])");
  CHECK(contains(e, "argument 1"));
  CHECK(contains(e, "member 'b'"));
  CHECK(contains(arg_error(fm, "[[1, 2]]"), "argument 1"));

  auto fu = make_function([](std::unordered_map<std::string, std::vector<std::string>> m) {
    return m.at("k").size();
  });
  CHECK(fu(A(R"([{"k": ["a", "b"]}])"), {}) == json(2));

  auto fnest = make_function([](std::vector<std::vector<double>> m) { return m; });
  CHECK(fnest(A("[[[1, 2.5], []]]"), {}) == json::parse("[[1.0, 2.5], []]"));
  CHECK(contains(arg_error(fnest, "[[[1], [2, null]]]"), "element 1"));

  auto fj = make_function([](const json& anything, json more) {
    return json::make_array({anything, more});
  });
  CHECK(fj(A(R"([{"x": [null]}, 1])"), {}) == json::parse(R"([{"x": [null]}, 1])"));
}

TEST_CASE("function: results convert back (void, optional, containers, custom traits)") {
  auto fvoid = make_function([] {});
  CHECK(fvoid({}, {}).is_null());
  auto fopt = make_function([](bool b) { return b ? std::optional<int>(1) : std::nullopt; });
  CHECK(fopt(A("[true]"), {}) == json(1));
  CHECK(fopt(A("[false]"), {}).is_null());
  auto fvec = make_function([] { return std::vector<std::string>{"a", "b"}; });
  CHECK(fvec({}, {}) == json::parse(R"(["a", "b"])"));
  auto fpt = make_function([](point p) { return point{p.y, p.x}; });
  CHECK(fpt(A(R"([{"x": 1, "y": 2}])"), {}) == json::parse(R"({"x": 2, "y": 1})"));
  CHECK(to_json_value(std::map<std::string, bool>{{"t", true}}) == json::parse(R"({"t": true})"));
  CHECK(from_json_value<std::vector<int>>(json::parse("[1, 2]")) == std::vector<int>{1, 2});
}

TEST_CASE("function: argument count errors name the count") {
  auto f = make_function([](int a, int b) { return a + b; });
  CHECK(f(A("[1, 2]"), {}) == json(3));
  auto more = arg_error(f, "[1, 2, 3]");
  CHECK(contains(more, "takes 2 arguments"));
  CHECK(contains(more, "got 3"));
  CHECK(contains(arg_error(f, "[1]"), "missing argument 2"));
  CHECK(contains(arg_error(f, "[]"), "missing argument 1"));
  auto f1 = make_function([](int a) { return a; });
  CHECK(contains(arg_error(f1, "[1, 2]"), "takes 1 argument,"));
  auto f0 = make_function([] { return 0; });
  CHECK(contains(arg_error(f0, "[1]"), "takes 0 arguments"));
}

TEST_CASE("function: kwargs by params, positional, mixed, and their errors") {
  auto f = make_function([](int a, const std::string& b) { return b + std::to_string(a); },
                         {"a", "b"});
  CHECK(f(A(R"([1, "x"])"), {}) == json("x1"));
  CHECK(f({}, K(R"({"a": 2, "b": "y"})")) == json("y2"));
  CHECK(f({}, K(R"({"b": "y", "a": 3})")) == json("y3")); // order of kwargs is free
  CHECK(f(A("[4]"), K(R"({"b": "z"})")) == json("z4"));

  auto twice = arg_error(f, "[4]", R"({"a": 5, "b": "z"})");
  CHECK(contains(twice, "'a'"));
  CHECK(contains(twice, "twice"));
  auto unknown = arg_error(f, "[4]", R"({"c": 1})");
  CHECK(contains(unknown, "unexpected keyword argument 'c'"));
  auto missing = arg_error(f, "[]", R"({"a": 1})");
  CHECK(contains(missing, "missing argument 2 ('b')"));
  auto wrong = arg_error(f, "[]", R"({"a": "one", "b": "x"})");
  CHECK(contains(wrong, "argument 1 ('a')"));
}

TEST_CASE("function: without params a typed function takes no kwargs") {
  auto f = make_function([](int a) { return a; });
  CHECK(contains(arg_error(f, "[]", R"({"a": 1})"), "unexpected keyword argument 'a'"));
  // Errors without names say the position only.
  auto e = arg_error(f, R"(["x"])");
  CHECK(contains(e, "argument 1"));
  CHECK_FALSE(contains(e, "('"));
}

TEST_CASE("function: optional parameters") {
  auto f = make_function(
    [](int a, std::optional<int> b) { return b ? json(a + *b) : json("no b"); }, {"a", "b"});
  CHECK(f(A("[1]"), {}) == json("no b"));
  CHECK(f(A("[1, 2]"), {}) == json(3));
  CHECK(f(A("[1, null]"), {}) == json("no b"));
  CHECK(f(A("[1]"), K(R"({"b": 5})")) == json(6));
  CHECK(f({}, K(R"({"a": 1})")) == json("no b"));
  CHECK(contains(arg_error(f, R"([1, "x"])"), "argument 2 ('b')"));
  CHECK(contains(arg_error(f, "[]"), "missing argument 1 ('a')"));
  // An optional first parameter may be missing too.
  auto g = make_function([](std::optional<std::string> s) { return s.value_or("default"); });
  CHECK(g({}, {}) == json("default"));
  CHECK(g(A(R"(["given"])"), {}) == json("given"));
}

TEST_CASE("function: a mutable callable keeps its state across calls") {
  int calls = 0;
  auto f = make_function([&calls](int x) mutable { return x + ++calls; });
  CHECK(f(A("[10]"), {}) == json(11));
  CHECK(f(A("[10]"), {}) == json(12));
  CHECK(calls == 2);
}

TEST_CASE("function: plain function pointers and std::function work") {
  struct local {
    static int twice(int x) { return 2 * x; }
  };
  auto fp = make_function(&local::twice);
  CHECK(fp(A("[4]"), {}) == json(8));
  std::function<std::string(std::string)> sf = [](std::string s) { return s + "!"; };
  auto fs = make_function(sf);
  CHECK(fs(A(R"(["hi"])"), {}) == json("hi!"));
}

TEST_CASE("function: exceptions thrown by the callable pass through unchanged") {
  auto f = make_function([](int) -> int { throw call_error("nope", json::make_object({{"k", 1}})); });
  try {
    f(A("[1]"), {});
    FAIL("no exception");
  } catch (const call_error& e) {
    CHECK(std::string(e.what()) == "nope");
    CHECK(e.details() == json::parse(R"({"k": 1})"));
  }
}

namespace {
int negate_noexcept(int x) noexcept {
  return -x;
}
} // namespace

TEST_CASE("function: noexcept callables and functions (part of the type since C++17)") {
  auto f = make_function([](int x) noexcept { return x + 1; });
  CHECK(f(A("[1]"), {}) == json(2));
  auto g = make_function(&negate_noexcept);
  CHECK(g(A("[3]"), {}) == json(-3));
  struct functor {
    int operator()(int x) const noexcept { return 10 * x; }
  };
  auto h = make_function(functor{});
  CHECK(h(A("[2]"), {}) == json(20));
}

TEST_CASE("function: string views, C strings, literals, json::array and json::object") {
  auto views = make_function([](std::string_view a, const char* b) {
    return std::string(a) + "+" + b;
  });
  CHECK(views(A(R"(["x", "y"])"), {}) == json("x+y"));
  CHECK(contains(arg_error(views, R"([1, "y"])"), "argument 1"));
  auto literal = make_function([] { return "ok"; });
  CHECK(literal({}, {}) == json("ok"));
  auto view_out = make_function([](int n) { return std::string_view("abcdef").substr(0, n); });
  CHECK(view_out(A("[2]"), {}) == json("ab"));
  auto keys = make_function([](const json::object& o, json::array a) {
    json::array out;
    for (const auto& m : o)
      out.emplace_back(m.key);
    out.emplace_back(static_cast<long long>(a.size()));
    return out;
  });
  CHECK(keys(A(R"([{"b": 1, "a": 2}, [1, 2, 3]])"), {}) == json::parse(R"(["b", "a", 3])"));
  CHECK(contains(arg_error(keys, R"([[1], [1]])"), "argument 1"));
  auto object_out = make_function([] { return json::make_object({{"k", 1}}).as_object(); });
  CHECK(object_out({}, {}) == json::parse(R"({"k": 1})"));
}
