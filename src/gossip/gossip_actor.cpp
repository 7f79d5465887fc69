#include "gossip/gossip_actor.hpp"

#include <algorithm>
#include <chrono>
#include <limits>

#include <caf/all.hpp>

#include "node/node_context.hpp"
#include "peers/peer_view.hpp"
#include "peers/cluster_messages.hpp"
#include "util/clock.hpp"
#include "util/log.hpp"

namespace mpreg {

namespace {

struct gossip_state {
  static inline const char* name = "mpreg.gossip";
  std::shared_ptr<node_context> ctx;
  caf::actor supervisor;
};

using gossip_pointer = caf::stateful_actor<gossip_state>*;

caf::timespan interval(const node_context& ctx) {
  return std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>(ctx.config.gossip_interval));
}

void round(gossip_pointer self) {
  auto& st = self->state;
  auto& ctx = *st.ctx;
  double now = wall_seconds();
  protocol::gossip g;
  g.u = protocol::new_id();
  g.cluster_id = ctx.config.cluster_id;
  g.peers.push_back(self_entry(ctx, now));
  auto peers = ctx.routes.peers();
  for (const auto& p : peers) {
    if (p.link)
      ctx.routes.touch(p.url, now); // a live link is fresh news
    if (p.has_advert)
      g.peers.push_back(protocol::gossip_entry{p.url, p.advert, p.link ? now : p.last_seen});
  }
  auto frame = protocol::encode(g);
  for (const auto& p : peers)
    if (p.link)
      self->send(p.link, send_atom::value, frame);
  for (const auto& url : ctx.routes.expire(now, ctx.config.dead_peer_timeout))
    self->send(st.supervisor, forget_atom::value, url);
}

void merge(gossip_pointer self, const protocol::gossip& g) {
  auto& st = self->state;
  auto& ctx = *st.ctx;
  if (!g.cluster_id.empty() && g.cluster_id != ctx.config.cluster_id)
    return;
  double now = wall_seconds();
  // Clocks differ between nodes: times are read on the sender's clock, whose
  // "now" is the newest entry (its own, which it sends first), and moved to
  // ours. A sender ahead of us or behind us thus neither pins an entry
  // forever nor has all its news judged stale.
  double sender_now = -std::numeric_limits<double>::infinity();
  for (const auto& e : g.peers)
    sender_now = std::max(sender_now, e.last_seen);
  for (auto e : g.peers) {
    auto url = normal_peer_url(e.url);
    if (!url || is_self_url(ctx, *url))
      continue;
    e.url = std::move(*url);
    if (!e.advert.cluster_id.empty() && e.advert.cluster_id != ctx.config.cluster_id)
      continue;
    double age = sender_now - e.last_seen;
    // Not seen by the sender within the dead-peer timeout: presumed dead,
    // not news worth linking to.
    if (age > ctx.config.dead_peer_timeout)
      continue;
    e.last_seen = now - age;
    if (ctx.routes.gossip(e))
      self->send(st.supervisor, connect_atom::value, e.url, false);
  }
}

caf::behavior gossip_behavior(gossip_pointer self, std::shared_ptr<node_context> ctx,
                              caf::actor supervisor) {
  self->state.ctx = std::move(ctx);
  self->state.supervisor = std::move(supervisor);
  self->delayed_send(self, interval(*self->state.ctx), tick_atom::value);
  return {
    [self](tick_atom) {
      try {
        round(self);
      } catch (const std::exception& e) {
        MPREG_LOG(error, "gossip round: " << e.what());
      }
      self->delayed_send(self, interval(*self->state.ctx), tick_atom::value);
    },
    [self](gossip_atom, protocol::gossip& g) { merge(self, g); },
  };
}

} // namespace

caf::actor spawn_gossip(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                        caf::actor supervisor) {
  return sys.spawn(gossip_behavior, std::move(ctx), std::move(supervisor));
}

} // namespace mpreg
