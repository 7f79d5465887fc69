#pragma once

#include <string_view>

namespace mpreg::util {

/// True when `text` is plain ASCII, which needs no UTF-8 validation.
inline bool is_ascii(std::string_view text) noexcept {
  unsigned char any = 0;
  for (unsigned char c : text) // vectorised: a few cycles per 32 bytes
    any |= c;
  return any < 0x80;
}

} // namespace mpreg::util
