// Parsing a frame the caller owns and will drop: faster than json::parse
// because strings are decoded in place. The text is clobbered.
#pragma once

#include <string>

#include "mpreg/json.hpp"

namespace mpreg {

/// Parses `text` (clobbering it); throws json_error like json::parse.
json parse_owned_text(std::string& text);

} // namespace mpreg
