// The wire codec: every PROTOCOL.md message to and from frame text.
// One place for the wire format; nodes, peer links, the client and the tools
// all go through it.
#pragma once

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mpreg/json.hpp"
#include "mpreg/messages.hpp"

namespace mpreg::protocol {

/// What a node says about itself in HELLO and gossip.
struct node_advert {
  std::vector<std::string> funs;
  std::vector<std::string> locs;
  std::string cluster_id;
  std::vector<std::string> advertised_urls;
  std::map<std::string, std::vector<std::string>> fun_locs;
};

/// {"role": "server", "server": {"what": ...}}: HELLO, GOODBYE or STATUS.
struct server_message {
  std::string u;
  std::string what; ///< "HELLO", "GOODBYE", "STATUS" (upper case as sent)
  node_advert advert; ///< filled for HELLO
};

/// {"role": "internal-rpc"}: a forwarded call with resolved arguments.
struct internal_rpc {
  std::string u;
  std::string command;
  json::array args;
  json::object kwargs;
};

/// {"role": "internal-answer"}: the answer to an internal_rpc.
struct internal_answer {
  std::string u;
  json answer;
  std::optional<rpc_error> error;
};

/// One entry of a gossip peer table.
struct gossip_entry {
  std::string url;
  node_advert advert;
  double last_seen = 0; ///< seconds since the Unix epoch
};

/// {"role": "gossip"}.
struct gossip {
  std::string u;
  std::string cluster_id;
  std::vector<gossip_entry> peers;
};

/// A frame that could not be decoded: answer it with this error.
struct decode_failure {
  std::string u = "unknown"; ///< the frame's u when one could be read
  rpc_error error;
};

/// Everything a frame can hold. A `response` is what clients and peer links
/// receive (also HELLO's ADDED, GOODBYE's GONE).
using inbound =
  std::variant<decode_failure, request, server_message, internal_rpc, internal_answer, gossip,
               response>;

/// A malformed message: carries the error to answer with.
class protocol_error : public std::runtime_error {
public:
  explicit protocol_error(rpc_error e) : std::runtime_error(e.message), error(std::move(e)) {}
  rpc_error error;
};

/// The top-level "u" of a frame that is not valid JSON, read leniently (its
/// first string "u" member; values before it are skipped by their brackets),
/// or "unknown". For error answers: "carrying its u when one can be read".
std::string salvage_u(std::string_view frame);

/// Decodes one frame. Never throws: bad input becomes a decode_failure.
inbound decode(std::string_view frame);
/// The same for a frame the caller drops afterwards (its readers may take
/// strings from it).
inbound decode_frame(std::string&& frame);
/// Decodes an already-parsed frame value.
inbound decode_value(const json& frame);
/// Decodes a parsed frame the caller no longer needs (moves out of it).
inbound decode_value(json&& frame);

/// Validates and converts a request object ({"role":"rpc", ...}).
/// Throws protocol_error on a malformed request.
request decode_request(const json& frame);

// Encoders produce compact frame text.
std::string encode(const request& r);
std::string encode(const response& r);
std::string encode(const server_message& m);
std::string encode(const internal_rpc& m);
std::string encode(const internal_answer& m);
std::string encode(const gossip& m);

json to_json(const request& r);
json to_json(const response& r);
json to_json(const node_advert& a);
node_advert advert_from_json(const json& j);
/// A JSON array of the strings.
json string_array(const std::vector<std::string>& xs);

/// A new unique id for a `u` field (random, 26 characters like a ULID).
std::string new_id();

} // namespace mpreg::protocol
