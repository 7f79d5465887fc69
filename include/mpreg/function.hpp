// Registering functions: the raw form and typed callables.
//
//   node.add_function("add", [](int a, int b) { return a + b; });
//
//   mpreg::function_options gpu;
//   gpu.resources = {"gpu"};
//   node.add_function("train", train_model, gpu);
//
//   node.add_raw_function("sum_all",
//       [](const mpreg::json::array& args, const mpreg::json::object& kwargs) {...});
//
// Typed callables (lambdas, function pointers, function objects; noexcept or
// not) get their arguments converted from JSON and their result converted
// back. Built in: bool, integers, floating point, std::string,
// std::string_view and const char* (arguments: valid for the call only),
// std::vector<T>, string-keyed std::map / std::unordered_map,
// std::optional<T> (a missing or null argument), json::array, json::object,
// and mpreg::json for anything else. Specialise mpreg::json_traits<T> for
// your own types.
//
// Functions run concurrently: pool functions on several worker threads at
// once, inline functions on the actor threads. A callable with state must
// guard it (a mutex, atomics) like any function called from many threads.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mpreg/error.hpp"
#include "mpreg/json.hpp"

namespace mpreg {

/// The raw form of a function: positional args and kwargs in, a value out.
/// Throw (any std::exception, or mpreg::call_error) to fail the call.
using raw_function = std::function<json(const json::array& args, const json::object& kwargs)>;

/// How a function is offered to the cluster.
struct function_options {
  /// The function's own resources: a command with locs L runs here only when
  /// L is a subset of (node resources + these).
  std::vector<std::string> resources;
  /// Parameter names of a typed function, in order: lets callers pass its
  /// arguments as kwargs. Without names a typed function takes positional
  /// arguments only.
  std::vector<std::string> params;
  /// Run the function directly on the actor handling the call (the
  /// connection's session, or the request's job) instead of the worker pool.
  /// Only for tiny, non-blocking functions (echo is one): a slow inline
  /// function stalls its scheduler thread, and with tune_actor_system() the
  /// first of those also runs the node's socket I/O.
  bool run_inline = false;
};

/// Thrown by the typed adapter when arguments do not fit the signature; the
/// node answers error 1003 naming the function and this text.
class argument_error : public std::invalid_argument {
public:
  using std::invalid_argument::invalid_argument;
};

// -- conversions -------------------------------------------------------------

/// Conversion of T from and to JSON. Specialise for your own types with
/// static T from_json(const json&) and static json to_json(const T&).
template <class T, class = void>
struct json_traits;

template <>
struct json_traits<json> {
  static json from_json(const json& j) { return j; }
  static json to_json(json j) { return j; }
};

template <>
struct json_traits<bool> {
  static bool from_json(const json& j) { return j.as_bool(); }
  static json to_json(bool b) { return json{b}; }
};

template <class T>
struct json_traits<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  static T from_json(const json& j) {
    if (j.type() == json::kind::number) {
      // Accept 3.0 for an int, refuse 3.5. The bounds are powers of two,
      // exact as doubles: (double)max() rounds up to 2^digits, which is out
      // of range (converting it would be undefined behaviour).
      double d = j.as_double();
      if (std::floor(d) != d)
        throw json_error("expected an integer, got " + j.dump());
      if (d < static_cast<double>(std::numeric_limits<T>::min()) ||
          d >= std::ldexp(1.0, std::numeric_limits<T>::digits))
        throw json_error("integer " + j.dump() + " out of range");
      return static_cast<T>(d);
    }
    if constexpr (std::is_signed_v<T>) {
      std::int64_t v = j.as_int();
      if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
          v > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
        throw json_error("integer " + std::to_string(v) + " out of range");
      return static_cast<T>(v);
    } else {
      std::uint64_t v = j.as_uint();
      if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
        throw json_error("integer " + std::to_string(v) + " out of range");
      return static_cast<T>(v);
    }
  }
  static json to_json(T v) {
    if constexpr (std::is_signed_v<T>)
      return json{static_cast<long long>(v)};
    else
      return json{static_cast<unsigned long long>(v)};
  }
};

template <class T>
struct json_traits<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  static T from_json(const json& j) { return static_cast<T>(j.as_double()); }
  static json to_json(T v) { return json{static_cast<double>(v)}; }
};

template <>
struct json_traits<std::string> {
  static std::string from_json(const json& j) { return j.as_string(); }
  static json to_json(std::string s) { return json{std::move(s)}; }
};

// Views into the argument: valid while the function runs, not after.
template <>
struct json_traits<std::string_view> {
  static std::string_view from_json(const json& j) { return j.as_string(); }
  static json to_json(std::string_view s) { return json{s}; }
};

// Also what a string literal returned by a function decays to.
template <>
struct json_traits<const char*> {
  static const char* from_json(const json& j) { return j.as_string().c_str(); }
  static json to_json(const char* s) {
    if (!s)
      throw json_error("null const char* result");
    return json{s};
  }
};

template <>
struct json_traits<json::array> {
  static json::array from_json(const json& j) { return j.as_array(); }
  static json to_json(json::array a) { return json{std::move(a)}; }
};

template <>
struct json_traits<json::object> {
  static json::object from_json(const json& j) { return j.as_object(); }
  static json to_json(json::object o) { return json{std::move(o)}; }
};

template <class T>
struct json_traits<std::optional<T>> {
  static std::optional<T> from_json(const json& j) {
    if (j.is_null())
      return std::nullopt;
    return json_traits<T>::from_json(j);
  }
  static json to_json(const std::optional<T>& v) {
    return v ? json_traits<T>::to_json(*v) : json{};
  }
};

template <class T>
struct json_traits<std::vector<T>> {
  static std::vector<T> from_json(const json& j) {
    std::vector<T> out;
    const auto& a = j.as_array();
    out.reserve(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      try {
        out.push_back(json_traits<T>::from_json(a[i]));
      } catch (const json_error& e) {
        throw json_error("element " + std::to_string(i) + ": " + e.what());
      }
    }
    return out;
  }
  static json to_json(const std::vector<T>& v) {
    json::array a;
    a.reserve(v.size());
    for (const auto& x : v)
      a.push_back(json_traits<T>::to_json(x));
    return json{std::move(a)};
  }
};

namespace detail {
template <class Map>
Map map_from_json(const json& j) {
  Map out;
  for (const auto& m : j.as_object()) {
    try {
      out.emplace(m.key, json_traits<typename Map::mapped_type>::from_json(m.value));
    } catch (const json_error& e) {
      throw json_error("member '" + m.key + "': " + e.what());
    }
  }
  return out;
}
template <class Map>
json map_to_json(const Map& m) {
  json::object o;
  o.reserve(m.size());
  for (const auto& [k, v] : m)
    o.push_back(json_member{k, json_traits<typename Map::mapped_type>::to_json(v)});
  return json{std::move(o)};
}
} // namespace detail

template <class T>
struct json_traits<std::map<std::string, T>> {
  static std::map<std::string, T> from_json(const json& j) {
    return detail::map_from_json<std::map<std::string, T>>(j);
  }
  static json to_json(const std::map<std::string, T>& m) { return detail::map_to_json(m); }
};

template <class T>
struct json_traits<std::unordered_map<std::string, T>> {
  static std::unordered_map<std::string, T> from_json(const json& j) {
    return detail::map_from_json<std::unordered_map<std::string, T>>(j);
  }
  static json to_json(const std::unordered_map<std::string, T>& m) {
    return detail::map_to_json(m);
  }
};

/// Converts a C++ value to JSON with json_traits.
template <class T>
json to_json_value(T&& v) {
  return json_traits<std::decay_t<T>>::to_json(std::forward<T>(v));
}

/// Converts JSON to a C++ value with json_traits (throws json_error).
template <class T>
T from_json_value(const json& j) {
  return json_traits<std::decay_t<T>>::from_json(j);
}

// -- the typed adapter -------------------------------------------------------

namespace detail {

template <class T>
struct callable_traits : callable_traits<decltype(&T::operator())> {};
template <class R, class... As>
struct callable_traits<R (*)(As...)> {
  using result = R;
  using args = std::tuple<std::decay_t<As>...>;
};
template <class R, class... As>
struct callable_traits<R(As...)> : callable_traits<R (*)(As...)> {};
template <class C, class R, class... As>
struct callable_traits<R (C::*)(As...) const> : callable_traits<R (*)(As...)> {};
template <class C, class R, class... As>
struct callable_traits<R (C::*)(As...)> : callable_traits<R (*)(As...)> {};
// noexcept is part of the type since C++17.
template <class R, class... As>
struct callable_traits<R (*)(As...) noexcept> : callable_traits<R (*)(As...)> {};
template <class R, class... As>
struct callable_traits<R(As...) noexcept> : callable_traits<R (*)(As...)> {};
template <class C, class R, class... As>
struct callable_traits<R (C::*)(As...) const noexcept> : callable_traits<R (*)(As...)> {};
template <class C, class R, class... As>
struct callable_traits<R (C::*)(As...) noexcept> : callable_traits<R (*)(As...)> {};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

inline std::string describe_param(std::size_t i, const std::vector<std::string>& names) {
  std::string s = "argument " + std::to_string(i + 1);
  if (i < names.size())
    s += " ('" + names[i] + "')";
  return s;
}

template <class T>
T convert_param(std::size_t i, const json::array& args, const json::object& kwargs,
                const std::vector<std::string>& names) {
  const json* v = nullptr;
  if (i < args.size()) {
    v = &args[i];
  } else if (i < names.size()) {
    for (const auto& m : kwargs)
      if (m.key == names[i])
        v = &m.value;
  }
  if (!v) {
    if constexpr (is_optional<T>::value)
      return std::nullopt;
    throw argument_error("missing " + describe_param(i, names));
  }
  try {
    return json_traits<T>::from_json(*v);
  } catch (const json_error& e) {
    throw argument_error(describe_param(i, names) + ": " + e.what());
  }
}

template <class F, class... As, std::size_t... Is>
json invoke_typed(F& f, const json::array& args, const json::object& kwargs,
                  const std::vector<std::string>& names, std::tuple<As...>*,
                  std::index_sequence<Is...>) {
  constexpr std::size_t arity = sizeof...(As);
  if (args.size() > arity)
    throw argument_error("takes " + std::to_string(arity) + " argument" +
                         (arity == 1 ? "" : "s") + ", got " + std::to_string(args.size()));
  for (const auto& m : kwargs) {
    bool known = false;
    for (std::size_t i = 0; i < names.size() && i < arity; ++i)
      if (names[i] == m.key) {
        if (i < args.size())
          throw argument_error("argument '" + m.key + "' given twice");
        known = true;
      }
    if (!known)
      throw argument_error("unexpected keyword argument '" + m.key + "'");
  }
  // Convert every argument first (braced init keeps left-to-right order).
  std::tuple<As...> converted{convert_param<As>(Is, args, kwargs, names)...};
  using R = decltype(f(std::move(std::get<Is>(converted))...));
  if constexpr (std::is_void_v<R>) {
    f(std::move(std::get<Is>(converted))...);
    return json{};
  } else {
    return to_json_value(f(std::move(std::get<Is>(converted))...));
  }
}

} // namespace detail

/// Wraps a typed callable into the raw form. `params` names its parameters
/// (optional) so callers may pass them as kwargs.
template <class F>
raw_function make_function(F f, std::vector<std::string> params = {}) {
  using traits = detail::callable_traits<std::decay_t<F>>;
  using args_tuple = typename traits::args;
  return [f = std::move(f), params = std::move(params)](const json::array& args,
                                                        const json::object& kwargs) mutable {
    return detail::invoke_typed(f, args, kwargs, params, static_cast<args_tuple*>(nullptr),
                                std::make_index_sequence<std::tuple_size_v<args_tuple>>{});
  };
}

} // namespace mpreg
