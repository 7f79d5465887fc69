// The fast path for the frames peers exchange for every forwarded call:
// "internal-rpc" and "internal-answer" read straight from RapidJSON's SAX
// events, with no JSON tree for the envelope (only argument, answer and
// error values become trees). Before it, the general decoder's tree was
// about a third of a peer's instructions per forwarded echo (callgrind).
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "protocol/codec.hpp"

namespace mpreg::protocol {

/// The call or answer in `frame` when it is a well-formed internal-rpc or
/// internal-answer frame whose first member is "role" (as every node writes
/// it), read exactly as the general decoder would. Anything else (another
/// role, "role" later in the frame, a field of an unexpected type, a
/// repeated field, malformed text) gives nullopt, and the general decoder
/// then reads it or answers with its precise error. `frame` is untouched.
std::optional<std::variant<internal_rpc, internal_answer>>
read_internal(const std::string& frame);

} // namespace mpreg::protocol
