// Estimates of a value's encoded size, for the size limits (a result or a
// response over max_message_size fails with 1003 instead of growing memory).
// Strings count their bytes (escapes not included), integers their digits,
// other numbers a generous 24. A connection's answer is checked again as
// the frame it becomes (request_run::deliver).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "mpreg/json.hpp"

namespace mpreg {

/// Characters in the decimal form of an integer.
inline std::size_t decimal_digits(std::uint64_t n) {
  std::size_t digits = 1;
  while (n >= 10) {
    n /= 10;
    ++digits;
  }
  return digits;
}

/// Adds v's estimated size to `total`. `string_size(s)` may say what a string
/// stands for (a reference to another command's result) or nullopt for a
/// literal. Returns false as soon as `total` is past `limit`.
template <class StringSize>
bool add_encoded_size(const json& v, StringSize&& string_size, std::size_t limit,
                      std::size_t& total) {
  switch (v.type()) {
    case json::kind::null:
      total += 4;
      break;
    case json::kind::boolean:
      total += 5;
      break;
    case json::kind::integer: {
      auto i = v.as_int();
      // The magnitude of INT64_MIN does not fit int64: negate as unsigned.
      total += i < 0 ? 1 + decimal_digits(0 - static_cast<std::uint64_t>(i))
                     : decimal_digits(static_cast<std::uint64_t>(i));
      break;
    }
    case json::kind::unsigned_integer:
      total += decimal_digits(v.as_uint());
      break;
    case json::kind::number:
      total += 24;
      break;
    case json::kind::string: {
      std::optional<std::size_t> stands_for = string_size(v.as_string());
      total += stands_for ? *stands_for : v.as_string().size() + 2;
      break;
    }
    case json::kind::array:
      total += 2;
      for (const auto& e : v.as_array()) {
        total += 1;
        if (!add_encoded_size(e, string_size, limit, total))
          return false;
      }
      break;
    case json::kind::object:
      total += 2;
      for (const auto& m : v.as_object()) {
        total += m.key.size() + 4;
        if (!add_encoded_size(m.value, string_size, limit, total))
          return false;
      }
      break;
  }
  return total <= limit;
}

/// Whether v has arrays and objects nested more than `limit` deep ([[1]] is
/// 2). Every reader of ours refuses text nested deeper than
/// detail::max_depth, so a node must not send values deeper than
/// detail::max_value_depth inside its frames; and
/// each step of a chain that wraps its input (echos of echos of ...) would
/// copy a deeper value than the last. Recurses at most `limit` + 1 deep.
inline bool nested_deeper_than(const json& v, std::size_t limit) {
  if (v.is_array()) {
    if (limit == 0)
      return true;
    for (const auto& e : v.as_array())
      if (nested_deeper_than(e, limit - 1))
        return true;
  } else if (v.is_object()) {
    if (limit == 0)
      return true;
    for (const auto& m : v.as_object())
      if (nested_deeper_than(m.value, limit - 1))
        return true;
  }
  return false;
}

/// The estimated encoded size of a value with no references in it.
inline std::size_t encoded_size_estimate(const json& v) {
  std::size_t total = 0;
  add_encoded_size(
    v, [](const std::string&) { return std::optional<std::size_t>{}; }, SIZE_MAX, total);
  return total;
}

} // namespace mpreg
