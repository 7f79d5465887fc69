#include "protocol/request_reader.hpp"

#include <cstdint>
#include <string_view>

#include "protocol/sax_frame.hpp"

namespace mpreg::protocol {

namespace {

// A SAX handler that follows the frame's shape: the envelope, the cmds array,
// each command. Argument values go to a tree builder. Any surprise returns
// false, which stops the parse: the general decoder then takes the frame.
class reader {
public:
  request req;

  bool complete() const { return seen_role_ && seen_u_ && seen_cmds_; }

  bool Null() {
    if (auto r = forward([&](auto& b) { return b.Null(); }))
      return *r;
    if (at_ == where::top_value)
      return top_key_ == key::timeout ? done_top() : false;
    if (at_ == where::cmd_value &&
        (cmd_key_ == key::args || cmd_key_ == key::kwargs || cmd_key_ == key::locs))
      return done_cmd(); // null: as if absent
    return false;
  }
  bool Bool(bool b) {
    if (auto r = forward([&](auto& t) { return t.Bool(b); }))
      return *r;
    return false;
  }
  bool Int(int i) { return number(i, [&](auto& b) { return b.Int(i); }); }
  bool Uint(unsigned u) { return number(u, [&](auto& b) { return b.Uint(u); }); }
  bool Int64(std::int64_t i) {
    return number(static_cast<double>(i), [&](auto& b) { return b.Int64(i); });
  }
  bool Uint64(std::uint64_t u) {
    return number(static_cast<double>(u), [&](auto& b) { return b.Uint64(u); });
  }
  bool Double(double d) { return number(d, [&](auto& b) { return b.Double(d); }); }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return false; }

  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    if (auto r = forward([&](auto& b) { return b.String(s, n, copy); }))
      return *r; // a value's string: its builder checks it
    if (detail::has_surrogate(s, n))
      return false; // declined: the general decoder says why
    std::string_view v(s, n);
    if (at_ == where::top_value) {
      if (top_key_ == key::role)
        return v == "rpc" && done_top();
      if (top_key_ == key::u) {
        req.u.assign(s, n);
        return done_top();
      }
      return false;
    }
    if (at_ == where::cmd_value) {
      if (cmd_key_ == key::name) {
        cmd_.name.assign(s, n);
        return done_cmd();
      }
      if (cmd_key_ == key::fun) {
        cmd_.fun.assign(s, n);
        return done_cmd();
      }
      return false;
    }
    if (at_ == where::locs) {
      cmd_.locs.emplace_back(s, n);
      return true;
    }
    return false;
  }

  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    if (auto r = forward([&](auto& b) { return b.Key(s, n, copy); }))
      return *r;
    if (detail::has_surrogate(s, n))
      return false;
    std::string_view k(s, n);
    if (at_ == where::top) {
      top_key_ = k == "role" ? key::role : k == "u" ? key::u : k == "cmds" ? key::cmds
               : k == "timeout" ? key::timeout : key::other;
      bool* seen = top_key_ == key::role ? &seen_role_ : top_key_ == key::u ? &seen_u_
                 : top_key_ == key::cmds ? &seen_cmds_ : top_key_ == key::timeout ? &seen_timeout_
                 : nullptr;
      if (seen && *seen)
        return false; // a repeated field: the general decoder's rules apply
      if (seen)
        *seen = true;
      at_ = top_key_ == key::other ? skip_value() : where::top_value;
      return true;
    }
    if (at_ == where::cmd) {
      cmd_key_ = k == "name" ? key::name : k == "fun" ? key::fun : k == "args" ? key::args
               : k == "kwargs" ? key::kwargs : k == "locs" ? key::locs : key::other;
      if (cmd_key_ != key::other) {
        auto bit = 1u << static_cast<unsigned>(cmd_key_);
        if (cmd_seen_ & bit)
          return false;
        cmd_seen_ |= bit;
      }
      at_ = cmd_key_ == key::other ? skip_value() : where::cmd_value;
      return true;
    }
    return false;
  }

  bool StartObject() {
    if (++depth_ > detail::max_depth)
      return false;
    if (auto r = forward([&](auto& b) { return b.StartObject(); }, true))
      return *r;
    if (at_ == where::start) {
      at_ = where::top;
      return true;
    }
    if (at_ == where::cmds) {
      cmd_ = command{};
      cmd_seen_ = 0;
      at_ = where::cmd;
      return true;
    }
    if (at_ == where::cmd_value && cmd_key_ == key::kwargs)
      return capture([&](auto& b) { return b.StartObject(); });
    return false;
  }
  bool EndObject(rapidjson::SizeType n) {
    --depth_;
    if (auto r = forward([&](auto& b) { return b.EndObject(n); }, false, true))
      return *r;
    if (at_ == where::cmd) {
      auto need = (1u << static_cast<unsigned>(key::name)) | (1u << static_cast<unsigned>(key::fun));
      if ((cmd_seen_ & need) != need)
        return false;
      req.cmds.push_back(std::move(cmd_));
      at_ = where::cmds;
      return true;
    }
    if (at_ == where::top) {
      at_ = where::end;
      return true;
    }
    return false;
  }
  bool StartArray() {
    if (++depth_ > detail::max_depth)
      return false;
    if (auto r = forward([&](auto& b) { return b.StartArray(); }, true))
      return *r;
    if (at_ == where::top_value && top_key_ == key::cmds) {
      at_ = where::cmds;
      return true;
    }
    if (at_ == where::cmd_value && cmd_key_ == key::args)
      return capture([&](auto& b) { return b.StartArray(); });
    if (at_ == where::cmd_value && cmd_key_ == key::locs) {
      at_ = where::locs;
      return true;
    }
    return false;
  }
  bool EndArray(rapidjson::SizeType n) {
    --depth_;
    if (auto r = forward([&](auto& b) { return b.EndArray(n); }, false, true))
      return *r;
    if (at_ == where::cmds) {
      if (req.cmds.empty())
        return false;
      return done_top();
    }
    if (at_ == where::locs)
      return done_cmd();
    return false;
  }

private:
  enum class where { start, top, top_value, cmds, cmd, cmd_value, locs, end };
  enum class key : unsigned { role, u, cmds, timeout, name, fun, args, kwargs, locs, other };

  // Routes an event to the skipped or built value while one is active;
  // nullopt when the event belongs to the frame's own shape.
  template <class F>
  std::optional<bool> forward(F&& f, bool opens = false, bool closes = false) {
    auto r = value_.feed(f, opens, closes);
    if (value_.ended())
      finish_value();
    return r;
  }
  where skip_value() {
    value_.skip();
    resume_ = at_ == where::top ? where::top : where::cmd;
    return at_;
  }
  template <class F>
  bool capture(F&& start) {
    return value_.build(start, true);
  }
  void finish_value() {
    if (auto v = value_.take()) {
      if (cmd_key_ == key::args)
        cmd_.args = std::move(v->as_array());
      else
        cmd_.kwargs = std::move(v->as_object());
      at_ = where::cmd;
      return;
    }
    at_ = resume_;
  }
  template <class F>
  bool number(double v, F&& f) {
    if (auto r = forward(f))
      return *r;
    if (at_ == where::top_value && top_key_ == key::timeout && v > 0) {
      req.timeout = v;
      return done_top();
    }
    return false;
  }
  bool done_top() {
    at_ = where::top;
    return true;
  }
  bool done_cmd() {
    at_ = where::cmd;
    return true;
  }

  where at_ = where::start;
  where resume_ = where::top;
  key top_key_ = key::other;
  key cmd_key_ = key::other;
  bool seen_role_ = false, seen_u_ = false, seen_cmds_ = false, seen_timeout_ = false;
  unsigned cmd_seen_ = 0;
  command cmd_;
  std::size_t depth_ = 0; // open containers in the whole frame
  sax::nested_value value_;
};

} // namespace

std::optional<request> read_request(const std::string& frame) {
  reader r;
  if (!sax::parse_whole_frame(frame, r) || !r.complete())
    return std::nullopt;
  return std::move(r.req);
}

} // namespace mpreg::protocol
