// What every actor of one node shares: settings, functions, the worker pool.
// Owned by mpreg::node; actors hold it by shared_ptr so it outlives them.
#pragma once

#include <atomic>
#include <memory>
#include <set>
#include <string>

#include <caf/fwd.hpp>

#include <caf/actor.hpp>

#include "jobs/worker_pool.hpp"
#include "peers/routing_table.hpp"
#include "mpreg/settings.hpp"
#include "registry/function_registry.hpp"
#include "sessions/session_registry.hpp"
#include "transport/io_host.hpp"
#include "transport/ws_client.hpp"

namespace mpreg {

struct node_context {
  node_context(caf::actor_system& sys, settings s);

  caf::actor_system& system;
  settings config;                  ///< after start: bound port, advertised URLs
  std::set<std::string> resources;  ///< config.resources as a set
  function_registry functions;
  worker_pool pool;
  routing_table routes;             ///< peers and their functions (cluster)
  /// The node's I/O loop: its listener and its peer links share it. Run by
  /// the tuned scheduler's first worker when it can, else by "mpreg.io".
  std::shared_ptr<transport::io_host> io;
  /// Outgoing peer connections, on `io`; destroyed by ~node.
  // Read and cleared with std::atomic_load/store: a link spawned just before
  // the node is destroyed may start while ~node drops the endpoint.
  std::shared_ptr<transport::ws_client_endpoint> link_transport;
  /// Cluster actors, set while the node runs (sessions hand messages to them).
  caf::actor supervisor;
  caf::actor gossip;

  /// True when this node itself can run `fun` with `locs`.
  std::shared_ptr<const local_function> local_match(const std::string& fun,
                                                    const std::vector<std::string>& locs) const;

  // Counters for the status page.
  std::atomic<std::uint64_t> requests_total{0};
  std::atomic<std::uint64_t> requests_failed{0};
  session_registry sessions; ///< open client sessions (status page, stop)
  /// Set when the node starts stopping: requests that arrive from then on
  /// are answered 1002 at once (the ones already running are asked to, and
  /// calls our leaving links cut off end so too); peers' calls get 1008.
  std::atomic<bool> stopping{false};
};

} // namespace mpreg
