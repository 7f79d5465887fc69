// How our WebSocket endpoints read and write frame payloads around
// websocketpp 0.8.2.
//
// Writing: text_frame_header and mask_text let the listener and the client
// endpoint hand websocketpp finished ("prepared") frames built around the
// text itself; websocketpp would copy each, check its UTF-8 byte by byte
// and (client side) mask it byte by byte.
//
// Reading:
// websocketpp 0.8.2 (hybi13::process_payload_bytes) walks every payload byte
// twice, one at a time: to unmask it and to check its UTF-8. For small
// requests that was 16 % of a node's instructions (callgrind, echo). Each
// endpoint's .cpp replaces that member for its own config with
// MPREG_WS_FAST_PAYLOAD(config) right after defining the config: the mask
// goes 8 bytes per step and the UTF-8 automaton runs only on text that is
// not plain ASCII. Results and errors are websocketpp's (1007 on bad UTF-8,
// also across fragments), with one fix: websocketpp let a fragmented text
// message end inside a character (finalize_message tested the last frame's
// opcode, a continuation, instead of the message's); here it is 1007 too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>

#include <websocketpp/frame.hpp>
#include <websocketpp/processors/hybi13.hpp>
#include <websocketpp/version.hpp>

#include "util/ascii.hpp"

static_assert(websocketpp::major_version == 0 && websocketpp::minor_version == 8 &&
                websocketpp::patch_version == 2,
              "ws_payload.hpp replaces a websocketpp 0.8.2 internal: check it against this "
              "version (processors/hybi13.hpp, process_payload_bytes)");

namespace mpreg::transport {

/// Unmasks `len` bytes in place with websocketpp's prepared key (the 4-byte
/// key twice); returns the key rotated past them, as byte_mask_circ does.
inline std::size_t unmask(std::uint8_t* data, std::size_t len, std::size_t key) noexcept {
  static_assert(sizeof(std::size_t) == 8, "the prepared key is 8 bytes");
  std::size_t i = 0;
  for (; i + 8 <= len; i += 8) { // memcpy: unaligned loads without UB
    std::uint64_t word;
    std::memcpy(&word, data + i, 8);
    word ^= key;
    std::memcpy(data + i, &word, 8);
  }
  std::uint8_t bytes[8];
  std::memcpy(bytes, &key, 8);
  std::size_t rest = len - i;
  for (std::size_t j = 0; j < rest; ++j)
    data[i + j] ^= bytes[j];
  return websocketpp::frame::circshift_prepared_key(key, rest);
}

/// Bytes a connection may leave unsent (the other side not reading) before
/// our endpoints give up on it: a whole frame plus some slack. The listener
/// and the client endpoint share it, so a slow client and a frozen peer are
/// treated alike.
inline std::size_t unread_limit(std::size_t max_message_size) {
  return max_message_size + (std::size_t{16} << 20);
}

/// RFC 6455 5.2: the header of one unfragmented text frame of `n` bytes:
/// FIN + text opcode, the length in 7, 7+16 or 7+64 bits (network order),
/// and for a client's frame the mask bit and `mask_key` (4 bytes).
inline std::string text_frame_header(std::size_t n, const std::uint8_t* mask_key = nullptr) {
  std::string h;
  h.push_back(static_cast<char>(0x81));
  char mask_bit = mask_key ? static_cast<char>(0x80) : 0;
  if (n < 126) {
    h.push_back(static_cast<char>(mask_bit | static_cast<char>(n)));
  } else if (n <= 0xFFFF) {
    h.push_back(static_cast<char>(mask_bit | 126));
    h.push_back(static_cast<char>((n >> 8) & 0xFF));
    h.push_back(static_cast<char>(n & 0xFF));
  } else {
    h.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8)
      h.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> shift) & 0xFF));
  }
  if (mask_key)
    h.append(reinterpret_cast<const char*>(mask_key), 4);
  return h;
}

/// Masks (or unmasks: XOR is its own inverse) `text` in place with the
/// 4-byte `mask_key`, 8 bytes per step.
inline void mask_text(std::string& text, const std::uint8_t* mask_key) noexcept {
  websocketpp::frame::masking_key_type key;
  std::memcpy(key.c, mask_key, 4);
  unmask(reinterpret_cast<std::uint8_t*>(text.data()), text.size(),
         websocketpp::frame::prepare_masking_key(key));
}

/// A websocketpp message holding one finished text frame, `header` then
/// `payload`, which websocketpp then sends as it is ("prepared": no copy,
/// no UTF-8 check, no masking of its own); null when the connection can
/// make no message.
template <class Connection>
auto prepared_text(Connection& con, const std::string& header, std::string payload) {
  auto msg = con.get_message(websocketpp::frame::opcode::text, 0);
  if (msg) {
    msg->set_header(header);
    msg->get_raw_payload() = std::move(payload);
    msg->set_prepared(true);
  }
  return msg;
}

/// hybi13::process_payload_bytes' work for the message being read (`msg`,
/// hybi13's msg_metadata): unmask, append (or inflate), check UTF-8.
/// Returns the bytes taken, 0 with `ec` set on error.
template <class Metadata, class Deflate>
std::size_t take_payload(Metadata& msg, bool masked, Deflate& deflate, std::uint8_t* buf,
                         std::size_t len, std::error_code& ec) {
  if (masked)
    msg.prepared_key = unmask(buf, len, msg.prepared_key);
  std::string& out = msg.msg_ptr->get_raw_payload();
  std::size_t offset = out.size();
  if (deflate.is_enabled() && msg.msg_ptr->get_compressed()) {
    ec = deflate.decompress(buf, len, out);
    if (ec)
      return 0;
  } else {
    out.append(reinterpret_cast<const char*>(buf), len);
  }
  if (msg.msg_ptr->get_opcode() == websocketpp::frame::opcode::TEXT) {
    std::string_view added(out.data() + offset, out.size() - offset);
    // ASCII is valid UTF-8 only between characters: a sequence begun in an
    // earlier piece must still be finished by the automaton.
    bool ascii_ok = msg.validator.complete() && util::is_ascii(added);
    if (!ascii_ok && !msg.validator.decode(added.begin(), added.end())) {
      ec = websocketpp::processor::error::make_error_code(
        websocketpp::processor::error::invalid_utf8);
      return 0;
    }
  }
  return len;
}

/// hybi13::finalize_message's work for the message just completed: the
/// inflater's trailer, and a text message must not end inside a character.
template <class Metadata, class Deflate>
std::error_code finish_message(Metadata& msg, Deflate& deflate) {
  std::string& out = msg.msg_ptr->get_raw_payload();
  if (deflate.is_enabled() && msg.msg_ptr->get_compressed()) {
    std::uint8_t trailer[4] = {0x00, 0x00, 0xff, 0xff};
    if (auto ec = deflate.decompress(trailer, 4, out))
      return ec;
  }
  // The message's opcode: the last frame of a fragmented one says CONTINUATION.
  if (msg.msg_ptr->get_opcode() == websocketpp::frame::opcode::TEXT && !msg.validator.complete())
    return websocketpp::processor::error::make_error_code(
      websocketpp::processor::error::invalid_utf8);
  return {};
}

} // namespace mpreg::transport

/// Replaces hybi13<CONFIG>::process_payload_bytes and finalize_message (see
/// above). Use at global scope, after CONFIG is defined and before any
/// endpoint of it is used.
#define MPREG_WS_FAST_PAYLOAD(CONFIG)                                                        \
  template <>                                                                                \
  inline std::size_t websocketpp::processor::hybi13<CONFIG>::process_payload_bytes(          \
    std::uint8_t* buf, std::size_t len, websocketpp::lib::error_code& ec) {                  \
    std::size_t taken = ::mpreg::transport::take_payload(                                    \
      *m_current_msg, websocketpp::frame::get_masked(m_basic_header), m_permessage_deflate, \
      buf, len, ec);                                                                         \
    m_bytes_needed -= taken;                                                                 \
    return taken;                                                                            \
  }                                                                                          \
  template <>                                                                                \
  inline websocketpp::lib::error_code                                                       \
  websocketpp::processor::hybi13<CONFIG>::finalize_message() {                               \
    auto ec = ::mpreg::transport::finish_message(*m_current_msg, m_permessage_deflate);      \
    if (!ec)                                                                                 \
      m_state = READY;                                                                       \
    return ec;                                                                               \
  }
