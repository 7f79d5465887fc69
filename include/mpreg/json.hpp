// mpreg::json: the one JSON value type of the public API.
//
// Arguments, keyword arguments and results of MPREG calls are JSON values.
// This type keeps users free of the parser library the node uses inside.
// Objects keep their members in insertion order (like MPREG's Python dicts).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace mpreg {

class json;

/// One member of a JSON object.
struct json_member;

/// Thrown by json::parse on malformed text, and by typed accessors on a
/// value of another kind.
class json_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class json {
public:
  using array = std::vector<json>;
  using object = std::vector<json_member>;

  enum class kind { null, boolean, integer, unsigned_integer, number, string, array, object };

  json() noexcept = default;
  json(std::nullptr_t) noexcept {}
  json(bool b) noexcept : v_(b) {}
  json(int i) noexcept : v_(std::int64_t{i}) {}
  json(long i) noexcept : v_(std::int64_t{i}) {}
  json(long long i) noexcept : v_(std::int64_t{i}) {}
  json(unsigned i) noexcept : v_(std::int64_t{i}) {}
  // Unsigned values above INT64_MAX keep their own kind so they round-trip.
  json(unsigned long u) noexcept { set_unsigned(u); }
  json(unsigned long long u) noexcept { set_unsigned(u); }
  json(double d) noexcept : v_(d) {}
  json(const char* s) : v_(std::string(s)) {}
  json(std::string s) noexcept : v_(std::move(s)) {}
  json(std::string_view s) : v_(std::string(s)) {}
  json(array a) noexcept : v_(std::move(a)) {}
  json(object o) noexcept : v_(std::move(o)) {}

  /// An array from a list of values: json::make_array({1, "a", nullptr}).
  static json make_array(std::initializer_list<json> items = {});
  /// An object from key/value pairs: json::make_object({{"a", 1}}).
  static json make_object(std::initializer_list<std::pair<std::string, json>> members = {});

  /// Parses UTF-8 JSON text; throws json_error naming the offset on failure.
  static json parse(std::string_view text);
  /// Compact JSON text. Always valid UTF-8: invalid bytes in strings are
  /// written as U+FFFD.
  std::string dump() const;
  /// Appends the compact JSON text to `out` (no temporary buffer).
  void dump_to(std::string& out) const;
  /// Indented JSON text (for humans).
  std::string dump_pretty() const;

  kind type() const noexcept { return static_cast<kind>(v_.index()); }
  bool is_null() const noexcept { return type() == kind::null; }
  bool is_bool() const noexcept { return type() == kind::boolean; }
  /// True for integers of either signedness.
  bool is_integer() const noexcept {
    return type() == kind::integer || type() == kind::unsigned_integer;
  }
  /// True for every number, integral or not.
  bool is_number() const noexcept { return is_integer() || type() == kind::number; }
  bool is_string() const noexcept { return type() == kind::string; }
  bool is_array() const noexcept { return type() == kind::array; }
  bool is_object() const noexcept { return type() == kind::object; }

  // Checked accessors: throw json_error when the value is of another kind.
  bool as_bool() const;
  std::int64_t as_int() const;   // integral values that fit int64
  std::uint64_t as_uint() const; // non-negative integral values
  double as_double() const;      // any number
  const std::string& as_string() const;
  const array& as_array() const;
  array& as_array();
  const object& as_object() const;
  object& as_object();

  /// Object member lookup; nullptr when absent or not an object.
  const json* find(std::string_view key) const noexcept;
  json* find(std::string_view key) noexcept;
  /// Object member access, inserting null when absent (turns null into {}).
  json& operator[](std::string_view key);
  /// Appends to an array (turns null into []).
  void push_back(json v);
  /// Number of elements of an array or members of an object; 0 otherwise.
  std::size_t size() const noexcept;

  /// A short name of the value's kind, for error messages ("string", ...).
  const char* type_name() const noexcept;

  /// Equal values: numbers compare by value whatever their kind (1 == 1.0;
  /// two integers exactly, an integer and a double as doubles); objects
  /// compare as sets of members (member order does not matter, as for a
  /// Python dict).
  friend bool operator==(const json& a, const json& b);
  friend bool operator!=(const json& a, const json& b) { return !(a == b); }

private:
  void set_unsigned(unsigned long long u) noexcept;

  std::variant<std::nullptr_t, bool, std::int64_t, std::uint64_t, double, std::string, array,
               object>
    v_;
};

struct json_member {
  std::string key;
  json value;
};

inline bool operator==(const json_member& a, const json_member& b) {
  return a.key == b.key && a.value == b.value;
}

} // namespace mpreg
