// The bridge: the actor that owns the WebSocket listener. Its I/O thread turns
// each connection into a session actor and each frame into a message to it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

namespace mpreg {

struct node_context;

using listen_atom = caf::atom_constant<caf::atom("listen")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

using bridge_actor = caf::typed_actor<
  // Binds host:port from the settings; answers (bound port, "") or (0, why).
  caf::replies_to<listen_atom>::with<std::uint16_t, std::string>,
  // Closes the listener and every connection; answers when done.
  caf::replies_to<stop_atom>::with<bool>>;

bridge_actor spawn_bridge(caf::actor_system& sys, std::shared_ptr<node_context> ctx);

} // namespace mpreg
