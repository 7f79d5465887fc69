// The session: one actor per WebSocket connection. It decodes each frame
// once, answers requests of inline functions itself and starts a monitored
// job for any other request (the job writes its own answer), answers
// forwarded calls and hands cluster messages on. When the connection closes
// it exits with user_shutdown and cancels its jobs.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "bridge/ws_server.hpp"

namespace mpreg {

struct node_context;

using frame_atom = caf::atom_constant<caf::atom("frame")>;
using closed_atom = caf::atom_constant<caf::atom("closed")>;

/// The frames one read from the socket brought, in order.
struct frame_batch {
  std::vector<std::string> frames;
};

} // namespace mpreg

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mpreg::frame_batch)

namespace mpreg {

// The node is stopping: the session's running requests answer first (the
// jobs' stopping_atom), then it replies true and its connection may close.
using stop_requests_atom = caf::atom_constant<caf::atom("stopreqs")>;
// The session to itself: a request waiting for a slot may have timed out.
using waiting_deadline_atom = caf::atom_constant<caf::atom("waitdead")>;
// A pool thread to the session: its peer's calls in flight dropped to the
// level where a connection paused for them is read again.
using calls_done_atom = caf::atom_constant<caf::atom("callsdone")>;

using session_actor =
  caf::typed_actor<caf::reacts_to<frame_atom, frame_batch>, // frames' text
                   caf::reacts_to<closed_atom>,             // the connection is gone
                   caf::reacts_to<waiting_deadline_atom>,
                   caf::reacts_to<calls_done_atom>,
                   caf::replies_to<stop_requests_atom>::with<bool>>;

session_actor spawn_session(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                            std::shared_ptr<bridge::outbound> out);

} // namespace mpreg
