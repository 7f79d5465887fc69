// The frame payload path that replaces websocketpp's byte-at-a-time one
// (src/transport/ws_payload.hpp) must unmask exactly as websocketpp does.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <websocketpp/frame.hpp>

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
