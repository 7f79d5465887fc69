// A peer link: one actor per remote node we call. It owns one outgoing
// WebSocket connection (from the node's shared client endpoint), introduces
// this node with HELLO, forwards calls as internal-rpc and matches each
// internal-answer to the waiting job. When the connection ends it fails every
// outstanding call with 1008 and exits with an error, so its supervisor
// restarts it.
#pragma once

#include <memory>
#include <string>

#include <caf/fwd.hpp>

namespace mpreg {

struct node_context;

/// Spawns a link to `url`, reporting to `supervisor`. Untyped handle (the
/// routing table stores it); its messages are in cluster_messages.hpp.
caf::actor spawn_peer_link(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                           std::string url, caf::actor supervisor);

/// This node's HELLO advert (all functions, or just `only` when given).
struct node_context;
std::string hello_frame(const node_context& ctx, const std::string& u,
                        const std::string* only = nullptr);

} // namespace mpreg
