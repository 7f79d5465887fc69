// Functions for the node tests, loaded with `mpreg-node --module PATH`.
//
//   sleep_ms(ms)            sleeps ms milliseconds, returns ms
//   spin_ms(ms)             computes (spins) for ms milliseconds, returns ms
//   fail(message)           throws std::runtime_error(message)
//   fail_details(message)   throws mpreg::call_error(message, {"reason": message, "code": 42})
//   fail_unknown()          throws a non-std exception (an int)
//   add(a, b)               integer sum (params a, b)
//   concat(a, b)            string concatenation
//   inc(x)                  x + 1
//   sum(xs)                 sum of an array of integers
//   big(n)                  a string of n bytes ('x')
//   kw(a, b=null)           {"a": a, "b": b}; params a, b; b optional
//   typed_map(m)            {key: 2 * value} for a string -> int object
//   scale(xs, by)           vector<double> times a double
//   flags(b)                !b
//   nothing()               returns null (a void function)
//   show(*args, **kwargs)   raw: {"args": args, "kwargs": kwargs}
//   sum_all(*args)          raw: sum of every numeric argument
//   needs_gpu(x)            x, but only where the resource "gpu" is (fun_locs)
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <mpreg/error.hpp>
#include <mpreg/module.hpp>

namespace {

// Signed overflow is undefined behaviour: a sum out of range throws, so the
// caller gets 1003 naming the command, as from any careful user function.
long long checked_sum(long long a, long long b) {
  long long out = 0;
  if (__builtin_add_overflow(a, b, &out))
    throw std::overflow_error("integer overflow");
  return out;
}

} // namespace

MPREG_MODULE(node) {
  using mpreg::json;
  using mpreg::function_options;

  function_options ms;
  ms.params = {"ms"};
  node.add_function("sleep_ms", [](long long ms) {
    if (ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
  }, ms);

  // CPU-bound: the pool does not grow for it (it grows for blocked threads).
  node.add_function("spin_ms", [](long long ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
    }
    return ms;
  }, ms);

  node.add_function("fail", [](const std::string& message) -> json {
    throw std::runtime_error(message);
  });
  node.add_function("fail_details", [](const std::string& message) -> json {
    throw mpreg::call_error(message, json::make_object({{"reason", message}, {"code", 42}}));
  });
  node.add_raw_function("fail_unknown", [](const json::array&, const json::object&) -> json {
    throw 7;
  });

  function_options ab;
  ab.params = {"a", "b"};
  node.add_function("add", [](long long a, long long b) { return checked_sum(a, b); }, ab);
  node.add_function("concat", [](std::string a, const std::string& b) { return a + b; }, ab);
  node.add_function("inc", [](long long x) { return checked_sum(x, 1); });
  node.add_function("sum", [](const std::vector<long long>& xs) {
    long long s = 0;
    for (auto x : xs)
      s = checked_sum(s, x);
    return s;
  });
  node.add_function("big", [](std::size_t n) { return std::string(n, 'x'); });
  // C++ strings may hold any bytes; the wire must carry UTF-8.
  node.add_function("bad_utf8", [] { return std::string("ok\xff\xc0!"); });
  node.add_function("kw", [](const json& a, std::optional<long long> b) {
    return json::make_object({{"a", a}, {"b", b ? json(*b) : json()}});
  }, ab);
  node.add_function("typed_map", [](const std::map<std::string, int>& m) {
    std::map<std::string, int> out;
    for (const auto& [k, v] : m)
      out[k] = 2 * v;
    return out;
  });
  function_options scale_opts;
  scale_opts.params = {"xs", "by"};
  node.add_function("scale", [](std::vector<double> xs, double by) {
    for (auto& x : xs)
      x *= by;
    return xs;
  }, scale_opts);
  node.add_function("flags", [](bool b) { return !b; });
  node.add_function("nothing", [] {});
  node.add_raw_function("show", [](const json::array& args, const json::object& kwargs) {
    return json::make_object({{"args", json(args)}, {"kwargs", json(kwargs)}});
  });
  node.add_raw_function("sum_all", [](const json::array& args, const json::object&) {
    double s = 0;
    bool integral = true;
    for (const auto& a : args) {
      if (!a.is_number())
        throw mpreg::call_error("sum_all takes numbers, got " + std::string(a.type_name()));
      integral = integral && a.is_integer();
      s += a.as_double();
    }
    return integral ? json(static_cast<long long>(s)) : json(s);
  });
  function_options gpu;
  gpu.resources = {"gpu"};
  node.add_function("needs_gpu", [](const json& x) { return x; }, gpu);
}
