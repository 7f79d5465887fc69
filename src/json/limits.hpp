// Limits every JSON reader and producer of the node shares.
#pragma once

#include <cstddef>

namespace mpreg::detail {

// Deeper documents are refused: our tree is destroyed and written recursively.
constexpr std::size_t max_depth = 512;

} // namespace mpreg::detail
