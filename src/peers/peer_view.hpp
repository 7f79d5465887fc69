// How this node describes itself and its view of the cluster: its own gossip
// entry, and the status report clients ask for (STATUS, GET /status).
#pragma once

#include <string>

#include "mpreg/json.hpp"
#include "protocol/codec.hpp"

namespace mpreg {

struct node_context;

/// True when `url` is one of this node's advertised URLs.
bool is_self_url(const node_context& ctx, const std::string& url);

/// This node's advert (all functions and resources).
protocol::node_advert self_advert(const node_context& ctx);

/// This node as a gossip entry seen at `now`.
protocol::gossip_entry self_entry(const node_context& ctx, double now);

/// The node's view of the cluster: itself and every peer with URL,
/// functions, resources, last_seen and link state, plus counters.
json cluster_status(const node_context& ctx);

} // namespace mpreg
