// How this node describes itself and its view of the cluster: its own gossip
// entry, and the status report clients ask for (STATUS, GET /status).
#pragma once

#include <optional>
#include <string>

#include "config/node_options.hpp"
#include "mpreg/json.hpp"
#include "protocol/codec.hpp"

namespace mpreg {

struct node_context;

/// The normal form of a peer URL read from the wire (HELLO, gossip), as the
/// command line normalises --peers ("WS://Host:09001/" -> "ws://host:9001"),
/// so one node has one key; nullopt when it is no ws:// or wss:// URL.
std::optional<std::string> normal_peer_url(const std::string& url);

/// The same, in pieces (host, port, path).
std::optional<config::url_parts> peer_url_parts(const std::string& url);

/// True when `url` names this node: one of its advertised URLs (normalised),
/// or a loopback name of it ("localhost", 127.x, [::1]) on the same port when
/// it advertises a loopback address.
bool is_self_url(const node_context& ctx, const std::string& url);

/// This node's advert (all functions and resources).
protocol::node_advert self_advert(const node_context& ctx);

/// This node as a gossip entry seen at `now`.
protocol::gossip_entry self_entry(const node_context& ctx, double now);

/// The node's view of the cluster: itself and every peer with URL,
/// functions, resources, last_seen and link state, plus counters.
json cluster_status(const node_context& ctx);

} // namespace mpreg
