#include "protocol/internal_reader.hpp"

#include <cstdint>
#include <string_view>

#include "protocol/sax_frame.hpp"

namespace mpreg::protocol {

namespace {

// A SAX handler for the envelope {"role": ..., "u": ..., ...}. Values that
// become trees (args, kwargs, answer, error) go to a tree builder; fields
// the general decoder ignores are skipped. Any surprise returns false, which
// stops the parse: the general decoder then takes the frame.
class reader {
public:
  enum class kind { unknown, rpc, answer };
  kind what = kind::unknown;
  internal_rpc call;
  internal_answer reply;

  bool complete() const {
    if (at_ != where::end || !has(key::u))
      return false;
    // An answer carries its result or its error (else the general decoder
    // says what is missing).
    if (what == kind::answer)
      return has(key::answer) || (has(key::error) && reply.error);
    return what == kind::rpc && has(key::command);
  }

  bool Null() { return scalar(true, [](auto& b) { return b.Null(); }); }
  bool Bool(bool v) { return scalar(false, [&](auto& b) { return b.Bool(v); }); }
  bool Int(int v) { return scalar(false, [&](auto& b) { return b.Int(v); }); }
  bool Uint(unsigned v) { return scalar(false, [&](auto& b) { return b.Uint(v); }); }
  bool Int64(std::int64_t v) { return scalar(false, [&](auto& b) { return b.Int64(v); }); }
  bool Uint64(std::uint64_t v) { return scalar(false, [&](auto& b) { return b.Uint64(v); }); }
  bool Double(double v) { return scalar(false, [&](auto& b) { return b.Double(v); }); }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return false; }

  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    auto event = [&](auto& b) { return b.String(s, n, copy); };
    if (auto r = forward(event))
      return *r; // a value's string: its builder checks it
    if (detail::has_surrogate(s, n))
      return false; // declined: the general decoder says why
    if (at_ != where::value)
      return false;
    std::string_view v(s, n);
    switch (key_) {
      case key::role:
        if (v == "internal-rpc")
          what = kind::rpc;
        else if (v == "internal-answer")
          what = kind::answer;
        else
          return false;
        return next_key();
      case key::u:
        (what == kind::rpc ? call.u : reply.u).assign(s, n);
        return next_key();
      case key::command:
        call.command.assign(s, n);
        return next_key();
      case key::answer:
      case key::error:
        return capture(event, false);
      default:
        return false; // args or kwargs of the wrong type
    }
  }

  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    if (auto r = forward([&](auto& b) { return b.Key(s, n, copy); }))
      return *r;
    if (detail::has_surrogate(s, n))
      return false;
    if (at_ != where::top)
      return false;
    std::string_view k(s, n);
    if (what == kind::unknown) {
      // "role" first, as every node writes it; otherwise the general decoder.
      if (k != "role")
        return false;
      key_ = key::role;
    } else {
      key_ = k == "role" ? key::role : k == "u" ? key::u : k == "command" ? key::command
           : k == "args" ? key::args : k == "kwargs" ? key::kwargs : k == "answer" ? key::answer
           : k == "error" ? key::error : key::other;
      // What the other kind of frame carries, its decoder ignores.
      bool rpc_only = key_ == key::command || key_ == key::args || key_ == key::kwargs;
      bool answer_only = key_ == key::answer || key_ == key::error;
      if ((what == kind::rpc && answer_only) || (what == kind::answer && rpc_only))
        key_ = key::other;
    }
    at_ = where::value;
    if (key_ == key::other) {
      value_.skip();
      return true;
    }
    auto bit = 1u << static_cast<unsigned>(key_);
    if (seen_ & bit)
      return false; // a repeated field: the general decoder's rules apply
    seen_ |= bit;
    return true;
  }

  bool StartObject() {
    if (++depth_ > detail::max_depth)
      return false;
    auto event = [](auto& b) { return b.StartObject(); };
    if (auto r = forward(event, true))
      return *r;
    if (at_ == where::start) {
      at_ = where::top;
      return true;
    }
    if (at_ == where::value &&
        (key_ == key::kwargs || key_ == key::answer || key_ == key::error))
      return capture(event, true);
    return false;
  }
  bool EndObject(rapidjson::SizeType n) {
    --depth_;
    if (auto r = forward([&](auto& b) { return b.EndObject(n); }, false, true))
      return *r;
    if (at_ == where::top && what != kind::unknown) {
      at_ = where::end;
      return true;
    }
    return false;
  }
  bool StartArray() {
    if (++depth_ > detail::max_depth)
      return false;
    auto event = [](auto& b) { return b.StartArray(); };
    if (auto r = forward(event, true))
      return *r;
    if (at_ == where::value && (key_ == key::args || key_ == key::answer || key_ == key::error))
      return capture(event, true);
    return false;
  }
  bool EndArray(rapidjson::SizeType n) {
    --depth_;
    if (auto r = forward([&](auto& b) { return b.EndArray(n); }, false, true))
      return *r;
    return false;
  }

private:
  enum class where { start, top, value, end };
  enum class key : unsigned { role, u, command, args, kwargs, answer, error, other };
  bool has(key k) const { return (seen_ & (1u << static_cast<unsigned>(k))) != 0; }

  template <class F>
  bool scalar(bool is_null, F&& event) {
    if (auto r = forward(event))
      return *r;
    if (at_ != where::value)
      return false;
    switch (key_) {
      case key::args:
      case key::kwargs:
        return is_null && next_key(); // null: as if absent
      case key::error:
        return is_null ? next_key() : capture(event, false);
      case key::answer:
        return capture(event, false);
      default:
        return false; // role, u and command are strings
    }
  }

  // Routes an event to the skipped or built value while one is active;
  // nullopt when the event belongs to the envelope.
  template <class F>
  std::optional<bool> forward(F&& event, bool opens = false, bool closes = false) {
    auto r = value_.feed(event, opens, closes);
    if (value_.ended())
      finish_value();
    return r;
  }

  // Starts building the current field's value with its first event.
  template <class F>
  bool capture(F&& first, bool opens) {
    if (!value_.build(first, opens))
      return false;
    if (value_.ended())
      finish_value();
    return true;
  }

  void finish_value() {
    if (auto v = value_.take()) {
      switch (key_) {
        case key::args: call.args = std::move(v->as_array()); break;
        case key::kwargs: call.kwargs = std::move(v->as_object()); break;
        case key::answer: reply.answer = std::move(*v); break;
        case key::error: reply.error = rpc_error::from_json(*v); break;
        default: break;
      }
    }
    at_ = where::top;
  }

  bool next_key() {
    at_ = where::top;
    return true;
  }

  where at_ = where::start;
  key key_ = key::other;
  unsigned seen_ = 0;
  std::size_t depth_ = 0; // open containers in the whole frame
  sax::nested_value value_;
};

} // namespace

std::optional<std::variant<internal_rpc, internal_answer>>
read_internal(const std::string& frame) {
  reader r;
  if (!sax::parse_whole_frame(frame, r) || !r.complete())
    return std::nullopt;
  if (r.what == reader::kind::rpc)
    return std::move(r.call);
  return std::move(r.reply);
}

} // namespace mpreg::protocol
