// Parsing a frame the caller owns and will drop: faster than json::parse
// because strings are decoded in place. The text is clobbered.
#pragma once

#include <string>
#include <string_view>

#include "mpreg/json.hpp"

namespace mpreg {

/// True when `text` is plain ASCII, which needs no UTF-8 validation.
bool is_ascii(std::string_view text) noexcept;

/// Parses `text` (clobbering it); throws json_error like json::parse.
json parse_owned_text(std::string& text);

} // namespace mpreg
