// Node settings: the names and defaults of MPREG's settings (PROTOCOL.md).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace mpreg {

struct settings {
  std::string host = "127.0.0.1";           ///< address to bind
  unsigned port = 6666;                     ///< port to bind; 0 picks a free one
  std::string name = "mpreg-node";          ///< human-readable node name
  std::vector<std::string> resources;       ///< this node's resources (a set)
  std::vector<std::string> peers;           ///< ws:// URLs to link to at start
  std::string connect;                      ///< one more ws:// URL to link to
  std::string cluster_id = "default-cluster";
  std::vector<std::string> advertised_urls; ///< defaults to ws://host:bound-port
  double gossip_interval = 5.0;             ///< seconds between gossip rounds
  double dead_peer_timeout = 30.0;          ///< seconds before an unrefreshed peer is dropped
  std::size_t max_message_size = 64u << 20; ///< largest frame / result, in bytes
  double reconnect_max_backoff = 30.0;      ///< cap of the peer-link reconnect backoff, seconds
  std::size_t worker_threads = 0;           ///< function pool size; 0: 2 x usable CPUs (min 4; affinity mask and cgroup quota)
  /// Microseconds the node's I/O loop keeps polling after work before it sleeps.
  /// Adapts: up to 4 x as long while the gaps between its work are that
  /// short, not at all while they are longer. Lower latency for CPU; 0 never polls.
  unsigned io_spin_us = 50;
  /// Requests one client connection may have running at once (those that
  /// wait on the pool or a peer). Past it, requests wait in the node in
  /// order, their timeouts running; when as many again wait, the node stops
  /// reading that connection until half that many wait: nothing is refused,
  /// and one client's flood cannot hold the node's threads or memory.
  std::size_t max_in_flight = 256;
};

} // namespace mpreg
