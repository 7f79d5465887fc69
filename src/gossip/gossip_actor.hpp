// Gossip: every gossip_interval this actor sends the node's view of the
// cluster (itself plus every peer it knows) to each linked peer, merges the
// views peers send (newest last_seen wins), asks the supervisor to link to
// nodes it learns of, and forgets peers not refreshed within the dead-peer
// timeout.
#pragma once

#include <memory>

#include <caf/fwd.hpp>

namespace mpreg {

struct node_context;

caf::actor spawn_gossip(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                        caf::actor supervisor);

} // namespace mpreg
