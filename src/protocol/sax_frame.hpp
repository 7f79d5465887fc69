// What the decoder's SAX fast paths (request_reader.cpp, internal_reader.cpp)
// share: running a reader over a whole frame, and the values inside a frame
// that a reader does not walk itself (a field it skips, or one it builds into
// a JSON tree).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include <rapidjson/reader.h>

#include "json/tree_builder.hpp"
#include "util/ascii.hpp"

namespace mpreg::protocol::sax {

/// Runs `handler` over `frame`: true when the text parsed and was one value
/// from its first byte to its last. Iterative, so nesting costs no stack;
/// UTF-8 is validated only where the text is not plain ASCII.
template <class Handler>
bool parse_whole_frame(const std::string& frame, Handler& handler) {
  rapidjson::Reader parser;
  rapidjson::StringStream ss(frame.c_str());
  constexpr unsigned iterative = rapidjson::kParseIterativeFlag;
  bool parsed = util::is_ascii(frame)
                  ? !parser.Parse<iterative>(ss, handler).IsError()
                  : !parser.Parse<iterative | rapidjson::kParseValidateEncodingFlag>(ss, handler)
                       .IsError();
  // A NUL inside the text ends the stream early.
  return parsed && ss.Tell() == frame.size();
}

/// What a skipped value is still checked for: the strings the general
/// decoder would refuse (its depth the reader counts itself).
struct skip_checker {
  bool Null() { return true; }
  bool Bool(bool) { return true; }
  bool Int(int) { return true; }
  bool Uint(unsigned) { return true; }
  bool Int64(std::int64_t) { return true; }
  bool Uint64(std::uint64_t) { return true; }
  bool Double(double) { return true; }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return false; }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    return !mpreg::detail::has_surrogate(s, n);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    return !mpreg::detail::has_surrogate(s, n);
  }
  bool StartObject() { return true; }
  bool EndObject(rapidjson::SizeType) { return true; }
  bool StartArray() { return true; }
  bool EndArray(rapidjson::SizeType) { return true; }
};

/// One value inside a frame that its reader skips or builds into a tree.
/// The reader hands it every SAX event while it is active (feed), and takes
/// the value once it has ended (ended, take).
class nested_value {
public:
  /// Skips the value whose first event comes next.
  void skip() {
    side_ = side::skip;
    nesting_ = 0;
  }
  /// Builds a tree, starting with the value's first event (`opens`: it is
  /// the start of a container). A scalar has ended once this returns.
  template <class F>
  bool build(F&& first, bool opens) {
    side_ = side::build;
    nesting_ = opens ? 1 : 0;
    if (!first(builder_))
      return false;
    ended_ = nesting_ == 0;
    return true;
  }
  /// An event while a value is active: its result, or nullopt when no value
  /// is active (the event belongs to the reader's own shape).
  template <class F>
  std::optional<bool> feed(F&& event, bool opens, bool closes) {
    if (side_ == side::none)
      return std::nullopt;
    if (side_ == side::build ? !event(builder_) : !event(checker_))
      return false;
    if (opens)
      ++nesting_;
    if (closes)
      --nesting_;
    ended_ = nesting_ == 0;
    return true;
  }
  /// True once the active value's last event has been fed.
  bool ended() const { return ended_; }
  /// Ends it: the tree when it was built, nullopt when it was skipped.
  std::optional<json> take() {
    bool built = side_ == side::build;
    side_ = side::none;
    ended_ = false;
    if (!built)
      return std::nullopt;
    return builder_.take_result();
  }

private:
  enum class side { none, skip, build };
  side side_ = side::none;
  std::size_t nesting_ = 0; // open containers inside the value
  bool ended_ = false;
  mpreg::detail::tree_builder builder_;
  skip_checker checker_;
};

} // namespace mpreg::protocol::sax
