// The messages between the cluster actors: peer links, their supervisor,
// gossip, and the sessions and jobs that talk to them. One comment per
// message says who sends it.
#pragma once

#include <string>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include "jobs/local_call.hpp"
#include "protocol/codec.hpp"

namespace mpreg {

// job -> link: (forward_atom, internal_rpc) -> call_outcome
using forward_atom = caf::atom_constant<caf::atom("forward")>;
// anyone -> link: (send_atom, frame text): write a frame as is
using send_atom = caf::atom_constant<caf::atom("send")>;
// supervisor -> link: (retire_atom) the peer is no longer routed to: take
// no new calls, let those in flight be answered, then close
using retire_atom = caf::atom_constant<caf::atom("retire")>;
// transport -> link: the connection opened / closed (with a reason);
// link -> supervisor: (link_open_atom, url, link, remote "IP:port") it
// opened and sent HELLO
using link_open_atom = caf::atom_constant<caf::atom("linkopen")>;
using link_closed_atom = caf::atom_constant<caf::atom("linkclosed")>;
// link -> supervisor: (link_up_atom, url, link) HELLO answered ADDED
using link_up_atom = caf::atom_constant<caf::atom("linkup")>;
// link -> supervisor: (link_refused_atom, url, why) HELLO refused (1005)
using link_refused_atom = caf::atom_constant<caf::atom("linkrefuse")>;
// session -> supervisor: (hello_atom, url, node_advert, full) -> bool: a peer
// introduced itself; full: the first HELLO on its connection (its whole
// advert, which replaces what we knew), else a later one announcing new
// functions (merged). Answered once this node can route to the peer (its
// link is up) or never will (the link failed); the session then says ADDED
using hello_atom = caf::atom_constant<caf::atom("hello")>;
// session -> supervisor: (goodbye_atom, url) a peer is leaving
using goodbye_atom = caf::atom_constant<caf::atom("goodbye")>;
// node/gossip -> supervisor: (connect_atom, url, seed) link to this node;
// seeds (--peers, --connect) are retried forever
using connect_atom = caf::atom_constant<caf::atom("connect")>;
// gossip -> supervisor: (forget_atom, url) the peer expired
using forget_atom = caf::atom_constant<caf::atom("forget")>;
// registry -> supervisor: (announce_atom, function name) tell peers
using announce_atom = caf::atom_constant<caf::atom("announce")>;
// node -> supervisor: (leave_atom) -> bool: GOODBYE to every peer, close links
using leave_atom = caf::atom_constant<caf::atom("leave")>;
// node -> supervisor: (rejoin_atom) the node starts again after a leave
using rejoin_atom = caf::atom_constant<caf::atom("rejoin")>;
// gossip -> itself: time for a round
using tick_atom = caf::atom_constant<caf::atom("tick")>;
// session -> gossip: (gossip_atom, gossip) a peer's table
using gossip_atom = caf::atom_constant<caf::atom("gossip")>;

} // namespace mpreg

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mpreg::protocol::internal_rpc)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mpreg::protocol::node_advert)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mpreg::protocol::gossip)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mpreg::call_outcome)
