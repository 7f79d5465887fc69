// Limits every JSON reader and producer of the node shares.
#pragma once

#include <cstddef>

namespace mpreg::detail {

// Deeper documents are refused: our tree is destroyed and written recursively.
constexpr std::size_t max_depth = 512;

// The deepest value a node sends inside a frame: the envelope adds two
// levels around it ({"r":{"name":v}}, {"args":[v]}, {"answer":v} one), and
// the whole frame must stay readable at max_depth.
constexpr std::size_t max_value_depth = max_depth - 2;

} // namespace mpreg::detail
