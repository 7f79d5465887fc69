// The frame payload path that replaces websocketpp's byte-at-a-time one
// (src/transport/ws_payload.hpp) must read exactly what websocketpp reads.
#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/frame.hpp>
#include <websocketpp/utf8_validator.hpp>

#include "transport/ws_payload.hpp"

TEST_CASE("unmask matches websocketpp's byte_mask_circ, piece by piece") {
  websocketpp::frame::masking_key_type key;
  key.c[0] = 0x12;
  key.c[1] = 0x9a;
  key.c[2] = 0x00;
  key.c[3] = 0xff;
  std::vector<std::uint8_t> data(100);
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<std::uint8_t>(i * 37 + 5);
  // Every way of cutting the payload into a first piece and the rest, so the
  // key's rotation between pieces is checked at every offset.
  for (std::size_t cut = 0; cut <= data.size(); ++cut) {
    CAPTURE(cut);
    auto ours = data;
    auto theirs = data;
    auto k1 = websocketpp::frame::prepare_masking_key(key);
    auto k2 = k1;
    k1 = mpreg::transport::unmask(ours.data(), cut, k1);
    k2 = websocketpp::frame::byte_mask_circ(theirs.data(), theirs.data(), cut, k2);
    CHECK(k1 == k2);
    mpreg::transport::unmask(ours.data() + cut, data.size() - cut, k1);
    websocketpp::frame::byte_mask_circ(theirs.data() + cut, theirs.data() + cut,
                                       data.size() - cut, k2);
    CHECK(ours == theirs);
    // And it is the RFC's mask: byte i ^ key[i % 4].
    bool rfc = true;
    for (std::size_t i = 0; i < data.size(); ++i)
      rfc = rfc && ours[i] == (data[i] ^ key.c[i % 4]);
    CHECK(rfc);
  }
}

// ---- the whole frame reader against websocketpp's own ----------------------

namespace {
struct fast_config : websocketpp::config::asio {};
} // namespace

MPREG_WS_FAST_PAYLOAD(fast_config)

namespace {

// Feeds bytes to a server-side hybi13 processor in pieces, as reads would,
// and writes down every message and the first error.
template <class Config>
struct reader_log {
  typename Config::rng_type rng;
  std::shared_ptr<typename Config::con_msg_manager_type> messages =
    std::make_shared<typename Config::con_msg_manager_type>();
  websocketpp::processor::hybi13<Config> processor{false, true, messages, rng};
  std::string log;
  // websocketpp 0.8.2 passes a fragmented text message that ends inside a
  // character; ours closes it (see ws_payload.hpp). The reference applies
  // that one rule on top of websocketpp's verdict.
  bool end_text_on_character = false;

  void feed(std::vector<std::uint8_t> data, const std::vector<std::size_t>& cuts) {
    std::size_t pos = 0, cut = 0;
    while (pos < data.size()) {
      std::size_t n = std::min(cuts[cut++ % cuts.size()], data.size() - pos);
      std::size_t off = 0;
      while (off < n) {
        std::error_code ec;
        std::size_t used = processor.consume(data.data() + pos + off, n - off, ec);
        if (ec) {
          log += "error: " + ec.message() + "\n";
          return;
        }
        off += used;
        if (processor.ready()) {
          auto m = processor.get_message();
          if (end_text_on_character && m->get_opcode() == websocketpp::frame::opcode::text &&
              !websocketpp::utf8_validator::validate(m->get_payload())) {
            log += "error: " + websocketpp::processor::error::make_error_code(
                                 websocketpp::processor::error::invalid_utf8)
                                 .message() +
                   "\n";
            return;
          }
          log += "message " + std::to_string(int(m->get_opcode())) + ": " + m->get_payload() + "\n";
        }
        if (used == 0 && !processor.ready())
          break;
      }
      pos += n;
    }
  }
};

void masked_frame(std::mt19937_64& rnd, std::vector<std::uint8_t>& out, int op, bool fin,
                  const std::string& payload) {
  out.push_back(static_cast<std::uint8_t>((fin ? 0x80 : 0) | op));
  std::size_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<std::uint8_t>(0x80 | n));
  } else {
    out.push_back(0x80 | 126);
    out.push_back(static_cast<std::uint8_t>(n >> 8));
    out.push_back(static_cast<std::uint8_t>(n & 0xff));
  }
  std::uint8_t key[4];
  for (auto& k : key)
    k = static_cast<std::uint8_t>(rnd());
  out.insert(out.end(), key, key + 4);
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(static_cast<std::uint8_t>(payload[i]) ^ key[i % 4]);
}

// Text of ASCII runs, whole characters, and broken or cut ones.
std::string random_text(std::mt19937_64& rnd) {
  static const char* pieces[] = {"a", "bc", " ", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80",
                                 "\xff", "\xc3", "\x80", "\xed\xa0\x80", "\xe2\x82",
                                 "0123456789abcdef"};
  std::string s;
  for (auto k = rnd() % 12; k > 0; --k) {
    auto w = rnd() % 100;
    s += pieces[w < 70 ? rnd() % 3 : w < 85 ? 3 + rnd() % 3 : 6 + rnd() % 6];
  }
  if (rnd() % 3 == 0)
    s += std::string(rnd() % 40, 'x');
  return s;
}

} // namespace

TEST_CASE("the frame reader gives websocketpp's messages and errors for any input and any reads") {
  std::mt19937_64 rnd(20261127);
  int runs = 0, with_error = 0, with_text = 0;
  for (; runs < 4000; ++runs) {
    std::vector<std::uint8_t> data;
    for (auto messages = 1 + rnd() % 3; messages > 0; --messages) {
      int op = rnd() % 4 == 0 ? 2 : 1; // binary or text
      auto fragments = 1 + rnd() % 3;
      for (std::size_t f = 0; f < fragments; ++f) {
        if (rnd() % 5 == 0) // a ping between fragments
          masked_frame(rnd, data, 9, true, std::string(rnd() % 10, 'p'));
        masked_frame(rnd, data, f == 0 ? op : 0, f + 1 == fragments, random_text(rnd));
      }
    }
    std::vector<std::size_t> cuts;
    for (auto n = 1 + rnd() % 4; n > 0; --n)
      cuts.push_back(1 + rnd() % 20);
    reader_log<websocketpp::config::asio> theirs;
    theirs.end_text_on_character = true;
    reader_log<fast_config> ours;
    theirs.feed(data, cuts);
    ours.feed(data, cuts);
    with_error += theirs.log.find("error") != std::string::npos;
    with_text += theirs.log.find("message 1") != std::string::npos;
    if (ours.log != theirs.log) {
      CAPTURE(theirs.log);
      CAPTURE(ours.log);
      FAIL("run " << runs << " differs");
    }
  }
  // The inputs exercised both outcomes.
  CHECK(with_error > 500);
  CHECK(with_text > 500);
}

TEST_CASE("a client frame built by text_frame_header and mask_text reads back in websocketpp") {
  const std::uint8_t key[4] = {0xa1, 0x07, 0x5e, 0xff};
  // Every length encoding: 7 bits, 16 bits, 64 bits, and their edges.
  for (std::size_t n : {0u, 1u, 125u, 126u, 127u, 1000u, 65535u, 65536u, 70001u}) {
    CAPTURE(n);
    std::string text(n, 'x');
    for (std::size_t i = 0; i < n; ++i)
      text[i] = static_cast<char>('a' + i % 26);
    auto payload = text;
    auto header = mpreg::transport::text_frame_header(payload.size(), key);
    mpreg::transport::mask_text(payload, key);
    std::string wire = header + payload;
    reader_log<websocketpp::config::asio> theirs;
    theirs.feed(std::vector<std::uint8_t>(wire.begin(), wire.end()), {4096});
    CHECK(theirs.log == "message 1: " + text + "\n");
  }
  // A server's frame has no mask bit and no key.
  CHECK(mpreg::transport::text_frame_header(5) == std::string("\x81\x05", 2));
}
