// Writing JSON text in pieces, for encoders that frame a message around
// values they do not own: no copy into a json tree first, and the same text
// (escapes, U+FFFD for invalid UTF-8) as json::dump_to.
#pragma once

#include <string>
#include <string_view>

#include "mpreg/json.hpp"

namespace mpreg::detail {

/// Appends `s` as a JSON string, as json(s).dump_to(out) would.
void append_string(std::string& out, std::string_view s);
/// Appends `a` as a JSON array, as json(a).dump_to(out) would.
void append_array(std::string& out, const json::array& a);
/// Appends `o` as a JSON object, as json(o).dump_to(out) would.
void append_object(std::string& out, const json::object& o);

} // namespace mpreg::detail
