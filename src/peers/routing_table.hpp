// The one routing table: which peer offers which function with which
// resources, and whether our link to it is up. Plain and thread-safe: the
// supervisor and gossip actors write it, jobs read it on every remote route.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <caf/actor.hpp>

#include "protocol/codec.hpp"

namespace mpreg {

/// Everything known of one peer.
struct peer_info {
  std::string url;                   ///< the peer's identity: its advertised_urls[0]
  protocol::node_advert advert;      ///< functions, resources, cluster
  bool has_advert = false;           ///< a HELLO or gossip told us its functions
  double last_seen = 0;              ///< epoch seconds of the newest news of it
  caf::actor link;                   ///< our link to it while up (else null)
  /// Our link's liveness probe went unanswered while calls were out: the
  /// peer may be frozen or overloaded. It gets new calls only when no other
  /// node can take them, until it is heard from again.
  bool unresponsive = false;
};

/// A peer that can run a command right now.
struct route {
  std::string url;
  caf::actor link;
  bool unresponsive = false; ///< see peer_info::unresponsive
};

class routing_table {
public:
  /// A HELLO from `url`: its advert. `full` (the first HELLO on a
  /// connection: a node that restarted may offer fewer functions now)
  /// replaces what was known; otherwise it is merged, keeping functions
  /// already known (a later HELLO announces only new functions).
  void hello(const std::string& url, const protocol::node_advert& advert, double now,
             bool full = false);
  /// A gossip entry. Returns true when the peer was unknown (link to it).
  /// Entries older than what we know, or than the peer's GOODBYE, are ignored.
  bool gossip(const protocol::gossip_entry& entry);
  /// Marks a peer seen now (our link to it is up).
  void touch(const std::string& url, double now);
  /// Our link to `url` came up (link set) or went down (null).
  void set_link(const std::string& url, caf::actor link);
  /// Our link `link` to `url` stopped hearing from it (true) or heard again
  /// (false). Ignored unless `link` is the peer's current link (a retiring
  /// one must not flag its successor).
  void set_unresponsive(const std::string& url, const caf::actor& link, bool unresponsive);
  /// Forgets a peer (GOODBYE or expiry); gossip older than `now` about it is
  /// ignored from then on.
  void remove(const std::string& url, double now);
  /// Removes peers not seen since `now - timeout`; returns their URLs.
  std::vector<std::string> expire(double now, double timeout);

  /// Peers whose link is up, offering `fun` with every one of `locs`.
  std::vector<route> candidates(const std::string& fun, const std::vector<std::string>& locs) const;
  bool contains(const std::string& url) const;
  std::optional<peer_info> find(const std::string& url) const;
  std::vector<peer_info> peers() const;

private:
  mutable std::mutex mutex_;
  std::map<std::string, peer_info> peers_;
  std::map<std::string, double> gone_; // url -> when it left
};

} // namespace mpreg
