// mpreg::node: an MPREG node living inside a CAF actor system.
//
//   caf::actor_system_config cfg;
//   mpreg::tune_actor_system(cfg);           // optional: mpreg-node's scheduler
//   caf::actor_system sys{cfg};
//   mpreg::settings s;  s.port = 0;
//   {
//     mpreg::node n{sys, s};
//     n.add_function("add", [](int a, int b) { return a + b; });
//     std::string url = n.start();           // "ws://127.0.0.1:40123"
//     ... clients call it over WebSocket, or actors send it mpreg::request:
//     caf::scoped_actor self{sys};
//     self->request(n.handle(), std::chrono::seconds(5), req).receive(
//       [](mpreg::response& r) { ... }, [](caf::error&) { ... });
//     n.stop();                               // also done by the destructor
//   }   // destroy the node (and every handle you copied) before the actor system
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "mpreg/function.hpp"
#include "mpreg/messages.hpp"
#include "mpreg/settings.hpp"

// In-process messages are passed by reference between actors, never serialised.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mpreg::request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mpreg::response)

namespace mpreg {

/// Sets up `cfg` the way mpreg-node runs its actors; call it before the
/// actor_system is made from `cfg`. Optional: a node works in any actor
/// system, this only makes it faster.
///  - Actors get cores − 1 scheduler threads (at least 1); "cores" is the
///    affinity mask capped by a cgroup CPU quota (containers).
///  - An idle scheduler thread sleeps at once on its condition variable
///    instead of polling 500 times with 50 µs sleeps (which a message
///    arriving in between has to wait out).
///  - An actor yields its thread after 64 messages in a row (CAF's default
///    is never), so it cannot hold the node's I/O back (below).
///  - The scheduler is CAF's work-stealing one, changed so that its first
///    thread runs the WebSocket I/O of the first node constructed in this
///    system between actors: a small request then crosses no thread on its
///    way through the node. Keep actors of your own that block off it (as
///    you would on any CAF scheduler thread): while one blocks, that node's
///    sockets wait. Also changed to wake a sleeping thread once per message
///    from a non-actor thread rather than twice, to leave the clock thread
///    asleep when an actor that never set a timeout exits, and not to name
///    each actor it runs for CAF's logger (a dynamic_cast per resume, paid
///    even with CAF's logging off).
/// Settings you make on `cfg` afterwards win over the first three. Without
/// this call a node runs its I/O on a thread of its own.
void tune_actor_system(caf::actor_system_config& cfg);

/// The node's in-process interface: send an mpreg::request, receive exactly
/// one mpreg::response (result or error, never a CAF error for bad input).
using node_actor = caf::typed_actor<caf::replies_to<request>::with<response>>;

class node {
public:
  /// A node in `system` with settings `s`. Nothing is bound until start().
  /// Throws std::invalid_argument naming the field ("settings.port: ...")
  /// when a setting is outside what mpreg-node accepts (settings.hpp).
  /// URLs are kept in mpreg-node's normal form (config() shows them).
  node(caf::actor_system& system, settings s);
  /// Stops the node if it is running.
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Registers (or replaces) a function taking raw JSON arguments. May be
  /// called before or after start(); peers learn of it at once.
  void add_raw_function(std::string name, raw_function fn, function_options options = {});

  /// Registers a typed callable; arguments and result are converted with
  /// json_traits (see mpreg/function.hpp). Wrong argument count or types
  /// answer error 1003 naming the function and the argument.
  template <class F>
  void add_function(std::string name, F fn, function_options options = {}) {
    auto params = options.params;
    add_raw_function(std::move(name), make_function(std::move(fn), std::move(params)),
                     std::move(options));
  }

  /// Binds the WebSocket listener and links to the configured peers.
  /// Returns the URL it listens on (port 0 resolved). Throws
  /// std::runtime_error when it cannot bind. While running, a second call
  /// returns the same URL. After stop() it starts the node again, on the
  /// port the first start bound.
  std::string start();

  /// Says GOODBYE to peers, answers its connections' running requests
  /// (those waiting on a peer too) with error 1002 ("node is stopping"), and
  /// closes every connection; returns once they are closed (a few seconds
  /// at most). The remaining actors, the function pool and the I/O loop end
  /// in the destructor; until then, requests sent to handle() still run on
  /// this node's own functions. Idempotent.
  void stop();

  /// The URL start() returned (empty before start; kept after stop()).
  std::string url() const;

  /// The settings in force (after start: the bound port, advertised URLs).
  const settings& config() const;

  /// The actor that answers in-process requests. Do not keep copies past
  /// the actor system's lifetime.
  node_actor handle() const;

  /// Names of the functions registered on this node.
  std::vector<std::string> functions() const;

  /// URLs of the peers this node can route to now (its link to them is up
  /// and it knows their functions), sorted. Poll it to wait for a cluster
  /// to form; the whole view is the STATUS extension (docs/PROTOCOL.md).
  std::vector<std::string> peers() const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace mpreg
