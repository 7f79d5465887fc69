// The peer supervisor: owns every peer link. It monitors each link actor and,
// when one dies (peer killed, network cut), restarts it with jittered
// exponential backoff for as long as the peer is a cluster member (seed peers
// from --peers/--connect: always). It turns HELLO and GOODBYE from peers into
// routing-table changes, announces new functions, and says GOODBYE on leave.
#pragma once

#include <memory>

#include <caf/fwd.hpp>

namespace mpreg {

struct node_context;

/// Untyped handle; messages in cluster_messages.hpp.
caf::actor spawn_peer_supervisor(caf::actor_system& sys, std::shared_ptr<node_context> ctx);

} // namespace mpreg
