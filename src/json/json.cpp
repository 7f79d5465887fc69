// The JSON codec: the only place that turns text into mpreg::json and back.
// RapidJSON's SAX reader builds our tree directly (one pass, no DOM in between)
// and its writer serialises it.
#include "mpreg/json.hpp"
#include "json/parse_owned.hpp"

#include <cmath>
#include <limits>

#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace mpreg {

namespace {

// Deeper documents are refused: our tree is destroyed and written recursively.
constexpr std::size_t max_depth = 512;

class tree_builder {
public:
  json result;
  std::string depth_error;

  bool Null() { return add(json{}); }
  bool Bool(bool b) { return add(json{b}); }
  bool Int(int i) { return add(json{i}); }
  bool Uint(unsigned u) { return add(json{u}); }
  bool Int64(std::int64_t i) { return add(json{static_cast<long long>(i)}); }
  bool Uint64(std::uint64_t u) { return add(json{static_cast<unsigned long long>(u)}); }
  bool Double(double d) { return add(json{d}); }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return false; }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    return add(json{std::string(s, n)});
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    key_.assign(s, n);
    return true;
  }
  bool StartObject() { return open(json{json::object{}}); }
  bool EndObject(rapidjson::SizeType) { return close(); }
  bool StartArray() { return open(json{json::array{}}); }
  bool EndArray(rapidjson::SizeType) { return close(); }

private:
  // Places a value into the innermost open container (or as the root).
  json* place(json v) {
    if (stack_.empty()) {
      result = std::move(v);
      return &result;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      auto& a = top.as_array();
      a.push_back(std::move(v));
      return &a.back();
    }
    auto& o = top.as_object();
    o.push_back(json_member{std::move(key_), std::move(v)});
    return &o.back().value;
  }
  bool add(json v) {
    place(std::move(v));
    return true;
  }
  bool open(json container) {
    if (stack_.size() >= max_depth) {
      depth_error = "nesting deeper than " + std::to_string(max_depth);
      return false;
    }
    // Pointers into vectors stay valid: a container is only appended to while
    // it is the top of the stack, never one of its ancestors.
    stack_.push_back(place(std::move(container)));
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  std::vector<json*> stack_;
  std::string key_;
};

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
    case json::kind::string: {
      const auto& s = v.as_string();
      w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
      break;
    }
    case json::kind::array:
      w.StartArray();
      for (const auto& e : v.as_array())
        write(w, e);
      w.EndArray();
      break;
    case json::kind::object:
      w.StartObject();
      for (const auto& m : v.as_object()) {
        w.Key(m.key.data(), static_cast<rapidjson::SizeType>(m.key.size()));
        write(w, m.value);
      }
      w.EndObject();
      break;
  }
}

// One message for every parse failure; the builder's own depth limit wins
// over RapidJSON's generic "terminated by the handler".
[[noreturn]] void malformed(const rapidjson::ParseResult& res, const tree_builder& builder) {
  std::string why =
    builder.depth_error.empty() ? rapidjson::GetParseError_En(res.Code()) : builder.depth_error;
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
  constexpr unsigned flags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
  auto res = reader.Parse<flags>(ms, builder);
  if (res.IsError())
    malformed(res, builder);
  return std::move(builder.result);
}

json parse_owned_text(std::string& text) {
  // In-situ: RapidJSON decodes strings inside the frame's own buffer instead
  // of a side stack; the frame is dropped after decoding anyway.
  tree_builder builder;
  rapidjson::Reader reader;
  rapidjson::InsituStringStream ss(text.data()); // std::string keeps a trailing NUL
  constexpr unsigned flags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag |
                             rapidjson::kParseInsituFlag | rapidjson::kParseStopWhenDoneFlag;
  auto res = reader.Parse<flags>(ss, builder);
  if (!res.IsError()) {
    // StopWhenDone ends at the value: anything but whitespace after it is an
    // error, and so is a NUL inside the text (the in-situ stream stops at it).
    std::size_t pos = ss.Tell();
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r'))
      ++pos;
    if (pos != text.size())
      throw json_error("malformed JSON at offset " + std::to_string(pos) +
                       ": The document root must not be followed by other values.");
    return std::move(builder.result);
  }
  malformed(res, builder);
}

std::string json::dump() const {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  write(w, *this);
  return std::string(buf.GetString(), buf.GetSize());
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
