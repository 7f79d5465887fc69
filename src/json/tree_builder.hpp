// Building mpreg::json from RapidJSON's SAX events: the one tree builder of
// the JSON parser (json::parse) and the frame readers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include <rapidjson/reader.h>

#include "json/limits.hpp"
#include "mpreg/json.hpp"

namespace mpreg::detail {

// RapidJSON 1.1 refuses a lone high surrogate escape but decodes a lone low
// one (\udc00-\udfff) into the bytes of a surrogate (ED B0-BF ..), which
// are not UTF-8. Text is refused for those too. Input bytes are validated
// (or ASCII), so only an escape can have put them there.
inline bool has_surrogate(const char* s, std::size_t n) {
  const char* end = s + n;
  for (auto p = static_cast<const char*>(std::memchr(s, '\xED', n)); p;
       p = static_cast<const char*>(std::memchr(p + 1, '\xED', static_cast<std::size_t>(end - p - 1))))
    if (p + 1 < end && static_cast<unsigned char>(p[1]) >= 0xA0)
      return true;
  return false;
}

class tree_builder {
public:
  std::string handler_error;

  // The stacks are kept per thread between parses, so a parse allocates
  // only what it returns.
  tree_builder() : values_(stacks().values), keys_(stacks().keys) {
    values_.clear();
    keys_.clear();
  }
  ~tree_builder() {
    // Do not keep the stacks of one huge document alive for good.
    if (values_.capacity() > 4096)
      std::vector<json>().swap(values_);
    if (keys_.capacity() > 4096)
      std::vector<std::string>().swap(keys_);
    values_.clear();
    keys_.clear();
  }
  tree_builder(const tree_builder&) = delete;
  tree_builder& operator=(const tree_builder&) = delete;

  bool Null() { return add(json{}); }
  bool Bool(bool b) { return add(json{b}); }
  bool Int(int i) { return add(json{i}); }
  bool Uint(unsigned u) { return add(json{u}); }
  bool Int64(std::int64_t i) { return add(json{static_cast<long long>(i)}); }
  bool Uint64(std::uint64_t u) { return add(json{static_cast<unsigned long long>(u)}); }
  bool Double(double d) { return add(json{d}); }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return false; }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    if (has_surrogate(s, n))
      return lone_surrogate();
    return add(json{std::string(s, n)});
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (has_surrogate(s, n))
      return lone_surrogate();
    keys_.emplace_back(s, n);
    return true;
  }
  bool StartObject() { return open(); }
  bool StartArray() { return open(); }
  // A container is built once its size is known: one allocation of the
  // exact size, no growth while members arrive.
  bool EndObject(rapidjson::SizeType n) {
    json::object o;
    o.reserve(n);
    auto v = values_.end() - n;
    auto k = keys_.end() - n;
    for (rapidjson::SizeType i = 0; i < n; ++i)
      o.push_back(json_member{std::move(k[i]), std::move(v[i])});
    values_.erase(v, values_.end());
    keys_.erase(k, keys_.end());
    return close(json{std::move(o)});
  }
  bool EndArray(rapidjson::SizeType n) {
    auto first = values_.end() - n;
    json::array a(std::make_move_iterator(first), std::make_move_iterator(values_.end()));
    values_.erase(first, values_.end());
    return close(json{std::move(a)});
  }

  /// The finished document (or the value just closed, when the builder is
  /// fed one value at a time), taken off the stack.
  json take_result() {
    json v = std::move(values_.back());
    values_.pop_back();
    return v;
  }

private:
  bool add(json v) {
    values_.push_back(std::move(v));
    return true;
  }
  bool lone_surrogate() {
    handler_error = "a string holds a lone surrogate (\\udc00-\\udfff without a high one before it)";
    return false;
  }
  bool open() {
    if (++depth_ > max_depth) {
      handler_error = "nesting deeper than " + std::to_string(max_depth);
      return false;
    }
    return true;
  }
  bool close(json v) {
    --depth_;
    return add(std::move(v));
  }

  struct stack_storage {
    std::vector<json> values;
    std::vector<std::string> keys;
  };
  static stack_storage& stacks() {
    thread_local stack_storage s;
    return s;
  }

  // Values and keys of the open containers, innermost last.
  std::vector<json>& values_;
  std::vector<std::string>& keys_;
  std::size_t depth_ = 0;
};

} // namespace mpreg::detail
