// Test support: a cluster of mpreg-node processes on 127.0.0.1.
//
//   mpreg::test::cluster_options o;
//   o.node_exe = MPREG_NODE_PATH;
//   o.modules = {MPREG_CLUSTER_MODULE_PATH};
//   mpreg::test::cluster c(o, {{"A", {"ra"}}, {"B", {"rb"}}, {"C", {"rc"}}});
//   REQUIRE(c.wait_until_converged(std::chrono::seconds(10)));
//   mpreg::client cl(c.url(0));
//   ...
//   c.kill(2);       // SIGKILL
//   c.restart(2);    // same port, same arguments
//
// Each node runs `mpreg-node --port 0 --name N --cluster-id ID
// --gossip-interval G --dead-peer-timeout T [--resources ...] [--module ...]
// [--peers <urls of its peers>]`, with MPREG_TEST_NODE_NAME=N in its
// environment (the cluster test module's whereami() returns it). By default
// node i's --peers are the URLs of nodes 0..i-1, so every node has a seed.
//
// Convergence is read from each node's `GET /status` (the cluster view JSON
// of PROTOCOL.md's STATUS extension), fetched with a tiny HTTP/1.0 client.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mpreg/json.hpp"
#include "support/node_process.hpp"

namespace mpreg::test {

/// One node of a cluster.
struct cluster_node_spec {
  std::string name;                        ///< --name and MPREG_TEST_NODE_NAME
  std::vector<std::string> resources;      ///< --resources
  /// Indices of the nodes it gets as --peers; unset: every earlier node.
  std::optional<std::vector<std::size_t>> peers;
  std::vector<std::string> peer_urls;      ///< more --peers (e.g. an in-process node)
  std::vector<std::string> modules;        ///< --module, on top of cluster_options::modules
  std::vector<std::string> extra_args;     ///< e.g. {"--cluster-id", "other"} (later flags win)
  std::vector<std::string> env;            ///< "KEY=VALUE" for this node's process
};

/// Settings shared by every node of a cluster.
struct cluster_options {
  std::string node_exe;                    ///< the mpreg-node executable
  std::string cluster_id = "test-cluster";
  double gossip_interval = 0.2;
  double dead_peer_timeout = 2.0;
  std::vector<std::string> modules;        ///< loaded on every node
  std::vector<std::string> extra_args;     ///< given to every node
  std::vector<std::string> env;            ///< given to every node
  std::chrono::milliseconds start_timeout{15000};
};

/// What a node's GET /status says about one peer.
struct peer_status {
  std::string url;
  bool up = false;
  std::vector<std::string> functions;
  std::vector<std::string> resources;
};

/// GET http://host:port/path over a fresh TCP connection (HTTP/1.0).
/// Returns the body of a 200 answer; nullopt on any failure or timeout.
std::optional<std::string> http_get(const std::string& host, int port, const std::string& path,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(2));

/// The cluster view of the node listening on `ws_url` (its GET /status),
/// or nullopt when it does not answer.
std::optional<json> node_status(const std::string& ws_url,
                                std::chrono::milliseconds timeout = std::chrono::seconds(2));

/// The peers listed in a status document.
std::vector<peer_status> status_peers(const json& status);
/// The entry for `url` in a status document, if listed.
std::optional<peer_status> status_peer(const json& status, const std::string& url);

/// Polls `pred` every `every` until it returns true or `timeout` passes.
/// Returns the last value of pred (so a bounded wait, never a fixed sleep).
bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
              std::chrono::milliseconds every = std::chrono::milliseconds(20));

/// True when every node in `urls` lists every other one with link "up" and
/// with at least the functions and resources that node reports for itself.
/// `why` (when given) says what was missing.
bool converged(const std::vector<std::string>& urls, std::string* why = nullptr);

class cluster {
public:
  /// Starts the nodes in order (node i links to its peers, see above).
  /// Throws node_process_error when a node does not start.
  cluster(cluster_options options, std::vector<cluster_node_spec> nodes);
  /// SIGKILLs whatever still runs.
  ~cluster();
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  std::size_t size() const;
  const std::string& name(std::size_t i) const;
  /// ws://127.0.0.1:PORT of node i (stays the same across restart()).
  const std::string& url(std::size_t i) const;
  int port(std::size_t i) const;
  node_process& process(std::size_t i);
  bool running(std::size_t i);
  /// URLs of the nodes still running.
  std::vector<std::string> running_urls();

  /// Node i's GET /status.
  std::optional<json> status(std::size_t i,
                             std::chrono::milliseconds timeout = std::chrono::seconds(2)) const;

  /// Waits until the running nodes (plus `extra_urls`, e.g. an in-process
  /// node) have converged; false on timeout, with the reason in `why`.
  bool wait_until_converged(std::chrono::milliseconds timeout,
                            const std::vector<std::string>& extra_urls = {},
                            std::string* why = nullptr);

  /// SIGKILL node i; returns its exit code (137).
  int kill(std::size_t i);
  /// SIGTERM node i and wait for it; returns its exit code (0 when clean).
  int terminate(std::size_t i, std::chrono::milliseconds deadline = std::chrono::seconds(10));
  /// Starts node i again, on the same port, with the same arguments.
  /// Retries for a while when the port is not free yet. The node must not be running.
  void restart(std::size_t i);
  /// Same, with other arguments from now on (as args() returns them: no
  /// --host/--port), e.g. without a module to change its functions.
  void restart(std::size_t i, std::vector<std::string> new_args);

  /// The arguments node i was (or will be) started with.
  const std::vector<std::string>& args(std::size_t i) const;

private:
  struct member;
  void start(std::size_t i, int port);
  cluster_options opts_;
  std::vector<std::unique_ptr<member>> nodes_;
};

} // namespace mpreg::test
