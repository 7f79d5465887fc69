// The fast path of the decoder: a well-formed "rpc" frame read straight into
// an mpreg::request from RapidJSON's SAX events, with no JSON tree for the
// envelope. Only argument values become trees.
#pragma once

#include <optional>
#include <string>

#include "mpreg/messages.hpp"

namespace mpreg::protocol {

/// The request in `frame` when it is a well-formed "rpc" frame exactly as the
/// general decoder would read it. Anything else (another role, a field of an
/// unexpected type, a repeated field, malformed text) gives nullopt, and the
/// general decoder then answers it with its precise error. `frame` is left
/// untouched.
std::optional<request> read_request(const std::string& frame);

} // namespace mpreg::protocol
