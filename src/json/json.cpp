// The JSON codec: the only place that turns text into mpreg::json and back.
// RapidJSON's SAX reader builds our tree directly (one pass, no DOM in between)
// and its writer serialises it.
#include "mpreg/json.hpp"
#include "json/append.hpp"
#include "util/ascii.hpp"
#include "json/tree_builder.hpp"

#include <cmath>
#include <limits>
#include <string_view>

#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace mpreg {

using detail::max_depth;
using detail::tree_builder;

namespace {

// Valid UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF)?
bool valid_utf8(std::string_view s) {
  if (util::is_ascii(s)) // the common case, in a vectorised pass
    return true;
  std::size_t i = 0, n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF)
      len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0)
        lo = 0xA0;
      else if (c == 0xED)
        hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0)
        lo = 0x90;
      else if (c == 0xF4)
        hi = 0x8F;
    } else
      return false;
    if (i + len > n)
      return false;
    auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi)
      return false;
    for (std::size_t k = 2; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
        return false;
    i += len;
  }
  return true;
}

// The text with each byte that is not part of a valid UTF-8 sequence
// replaced by U+FFFD (strings built by C++ functions may hold any bytes; the
// wire carries text frames, which must be UTF-8).
std::string repair_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t len = 1;
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0xC2 && c <= 0xF4) {
      len = c <= 0xDF ? 2 : c <= 0xEF ? 3 : 4;
      if (i + len > s.size() || !valid_utf8(s.substr(i, len)))
        len = 0;
    } else if (c >= 0x80)
      len = 0;
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.data() + i, len);
      i += len;
    }
  }
  return out;
}

template <class Writer>
void write_text(Writer& w, std::string_view s, bool key) {
  auto emit = [&](const char* p, std::size_t n) {
    auto size = static_cast<rapidjson::SizeType>(n);
    if (key)
      w.Key(p, size);
    else
      w.String(p, size);
  };
  if (valid_utf8(s)) {
    emit(s.data(), s.size());
  } else {
    auto fixed = repair_utf8(s);
    emit(fixed.data(), fixed.size());
  }
}

template <class Writer>
void write(Writer& w, const json& v);

template <class Writer>
void write_array(Writer& w, const json::array& a) {
  w.StartArray();
  for (const auto& e : a)
    write(w, e);
  w.EndArray();
}

template <class Writer>
void write_object(Writer& w, const json::object& o) {
  w.StartObject();
  for (const auto& m : o) {
    write_text(w, m.key, true);
    write(w, m.value);
  }
  w.EndObject();
}

template <class Writer>
void write(Writer& w, const json& v) {
  switch (v.type()) {
    case json::kind::null:
      w.Null();
      break;
    case json::kind::boolean:
      w.Bool(v.as_bool());
      break;
    case json::kind::integer:
      w.Int64(v.as_int());
      break;
    case json::kind::unsigned_integer:
      w.Uint64(v.as_uint());
      break;
    case json::kind::number: {
      double d = v.as_double();
      if (std::isfinite(d))
        w.Double(d);
      else
        w.Null(); // JSON has no NaN or infinity
      break;
    }
    case json::kind::string:
      write_text(w, v.as_string(), false);
      break;
    case json::kind::array:
      write_array(w, v.as_array());
      break;
    case json::kind::object:
      write_object(w, v.as_object());
      break;
  }
}

// RapidJSON's own buffer gets its SIMD string scan; it and the writer (its
// nesting stack) are kept per thread, one pair for every kind of write, so
// writing allocates nothing but the caller's string.
struct thread_writer {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w{buf};
};

thread_writer& this_thread_writer() {
  thread_local thread_writer tw;
  return tw;
}

// Runs `f` on the thread's writer and appends what it wrote to `out`. Never
// nested: nothing `f` calls writes JSON text itself.
template <class F>
void write_into(std::string& out, F&& f) {
  auto& [buf, w] = this_thread_writer();
  buf.Clear();
  w.Reset(buf);
  f(w);
  out.append(buf.GetString(), buf.GetSize());
  if (buf.GetSize() > (1u << 20)) { // keep no megabytes per thread after a large result
    buf.Clear();
    buf.ShrinkToFit();
  }
}

// One message for every parse failure; the builder's own depth limit wins
// over RapidJSON's generic "terminated by the handler".
[[noreturn]] void malformed(const rapidjson::ParseResult& res, const tree_builder& builder) {
  std::string why =
    builder.handler_error.empty() ? rapidjson::GetParseError_En(res.Code()) : builder.handler_error;
  throw json_error("malformed JSON at offset " + std::to_string(res.Offset()) + ": " + why);
}

[[noreturn]] void wrong_kind(const json& v, const char* wanted) {
  throw json_error(std::string("expected ") + wanted + ", got " + v.type_name());
}

} // namespace

json json::make_array(std::initializer_list<json> items) {
  return json{array(items)};
}

json json::make_object(std::initializer_list<std::pair<std::string, json>> members) {
  object o;
  o.reserve(members.size());
  for (const auto& m : members)
    o.push_back(json_member{m.first, m.second});
  return json{std::move(o)};
}

json json::parse(std::string_view text) {
  tree_builder builder;
  rapidjson::Reader reader;
  rapidjson::MemoryStream ms(text.data(), text.size());
  // Iterative parsing: no recursion on the C++ stack, whatever the input.
  // ASCII text needs no UTF-8 validation, which lets RapidJSON scan strings
  // with SIMD.
  constexpr unsigned flags = rapidjson::kParseIterativeFlag;
  auto res = util::is_ascii(text)
               ? reader.Parse<flags>(ms, builder)
               : reader.Parse<flags | rapidjson::kParseValidateEncodingFlag>(ms, builder);
  if (res.IsError())
    malformed(res, builder);
  // The stream reads a NUL byte as its end: text after one is not ignored.
  if (ms.Tell() != text.size())
    throw json_error("malformed JSON at offset " + std::to_string(ms.Tell()) +
                     ": The document root must not be followed by other values.");
  return builder.take_result();
}

std::string json::dump() const {
  std::string out;
  dump_to(out);
  return out;
}

void json::dump_to(std::string& out) const {
  write_into(out, [&](auto& w) { write(w, *this); });
}

void detail::append_string(std::string& out, std::string_view s) {
  write_into(out, [&](auto& w) { write_text(w, s, false); });
}

void detail::append_array(std::string& out, const json::array& a) {
  write_into(out, [&](auto& w) { write_array(w, a); });
}

void detail::append_object(std::string& out, const json::object& o) {
  write_into(out, [&](auto& w) { write_object(w, o); });
}

std::string json::dump_pretty() const {
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 2);
  write(w, *this);
  return std::string(buf.GetString(), buf.GetSize());
}

void json::set_unsigned(unsigned long long u) noexcept {
  if (u <= static_cast<unsigned long long>(std::numeric_limits<std::int64_t>::max()))
    v_ = static_cast<std::int64_t>(u);
  else
    v_ = static_cast<std::uint64_t>(u);
}

bool json::as_bool() const {
  if (auto p = std::get_if<bool>(&v_))
    return *p;
  wrong_kind(*this, "boolean");
}

std::int64_t json::as_int() const {
  if (auto p = std::get_if<std::int64_t>(&v_))
    return *p;
  if (type() == kind::unsigned_integer)
    throw json_error("integer out of range");
  wrong_kind(*this, "integer");
}

std::uint64_t json::as_uint() const {
  if (auto p = std::get_if<std::uint64_t>(&v_))
    return *p;
  if (auto p = std::get_if<std::int64_t>(&v_)) {
    if (*p < 0)
      throw json_error("expected a non-negative integer");
    return static_cast<std::uint64_t>(*p);
  }
  wrong_kind(*this, "integer");
}

double json::as_double() const {
  switch (type()) {
    case kind::integer:
      return static_cast<double>(std::get<std::int64_t>(v_));
    case kind::unsigned_integer:
      return static_cast<double>(std::get<std::uint64_t>(v_));
    case kind::number:
      return std::get<double>(v_);
    default:
      wrong_kind(*this, "number");
  }
}

const std::string& json::as_string() const {
  if (auto p = std::get_if<std::string>(&v_))
    return *p;
  wrong_kind(*this, "string");
}

const json::array& json::as_array() const {
  if (auto p = std::get_if<array>(&v_))
    return *p;
  wrong_kind(*this, "array");
}

json::array& json::as_array() {
  if (auto p = std::get_if<array>(&v_))
    return *p;
  wrong_kind(*this, "array");
}

const json::object& json::as_object() const {
  if (auto p = std::get_if<object>(&v_))
    return *p;
  wrong_kind(*this, "object");
}

json::object& json::as_object() {
  if (auto p = std::get_if<object>(&v_))
    return *p;
  wrong_kind(*this, "object");
}

const json* json::find(std::string_view key) const noexcept {
  if (auto p = std::get_if<object>(&v_))
    for (const auto& m : *p)
      if (m.key == key)
        return &m.value;
  return nullptr;
}

json* json::find(std::string_view key) noexcept {
  return const_cast<json*>(static_cast<const json*>(this)->find(key));
}

json& json::operator[](std::string_view key) {
  if (is_null())
    v_ = object{};
  if (auto existing = find(key))
    return *existing;
  auto& o = as_object();
  o.push_back(json_member{std::string(key), json{}});
  return o.back().value;
}

void json::push_back(json v) {
  if (is_null())
    v_ = array{};
  as_array().push_back(std::move(v));
}

std::size_t json::size() const noexcept {
  if (auto p = std::get_if<array>(&v_))
    return p->size();
  if (auto p = std::get_if<object>(&v_))
    return p->size();
  return 0;
}

const char* json::type_name() const noexcept {
  switch (type()) {
    case kind::null:
      return "null";
    case kind::boolean:
      return "boolean";
    case kind::integer:
    case kind::unsigned_integer:
      return "integer";
    case kind::number:
      return "number";
    case kind::string:
      return "string";
    case kind::array:
      return "array";
    case kind::object:
      return "object";
  }
  return "?";
}

bool operator==(const json& a, const json& b) {
  // Numbers compare by value across integer/double representations.
  if (a.is_number() && b.is_number()) {
    if (a.type() == b.type())
      return a.v_ == b.v_;
    if (a.is_integer() && b.is_integer())
      return false; // one is > INT64_MAX, the other is not
    return a.as_double() == b.as_double();
  }
  if (a.type() != b.type())
    return false;
  if (a.is_object()) {
    // Member order does not matter for equality.
    const auto& x = a.as_object();
    const auto& y = b.as_object();
    if (x.size() != y.size())
      return false;
    for (const auto& m : x) {
      auto other = b.find(m.key);
      if (!other || !(*other == m.value))
        return false;
    }
    return true;
  }
  return a.v_ == b.v_;
}

} // namespace mpreg
