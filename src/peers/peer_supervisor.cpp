#include "peers/peer_supervisor.hpp"

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <vector>

#include <caf/all.hpp>

#include "node/node_context.hpp"
#include "peers/cluster_messages.hpp"
#include "peers/peer_link_actor.hpp"
#include "peers/peer_view.hpp"
#include "util/log.hpp"
#include "util/clock.hpp"

namespace mpreg {

namespace {

using restart_atom = caf::atom_constant<caf::atom("restart")>;

struct link_slot {
  caf::actor link;                              // null while waiting to restart
  std::chrono::milliseconds backoff{0};         // next restart delay
  bool restart_pending = false;
  bool open = false; // connected, our HELLO sent
  bool up = false;   // our HELLO answered ADDED: routable
  bool failure_logged = false; // a seed's failed attempts, once until it is up
  std::string remote;          // "IP:port" the open link reached
  // HELLOs from the peer whose ADDED waits until we can route to it.
  std::vector<caf::response_promise> hello_waiters;
};

// The peer's HELLOs may be answered: we route to it now, or will not soon.
void answer_hellos(link_slot& slot) {
  for (auto& p : slot.hello_waiters)
    p.deliver(true);
  slot.hello_waiters.clear();
}

struct supervisor_state {
  static inline const char* name = "mpreg.peer_supervisor";
  std::shared_ptr<node_context> ctx;
  std::map<std::string, link_slot> links;       // url -> link
  std::map<caf::actor_addr, std::string> by_addr;
  std::set<std::string> seeds;                  // --peers / --connect: retried forever
  std::map<std::string, std::string> aliases;   // seed URL -> the URL its node advertises
  std::set<std::string> refused;                // other cluster: never again
  std::mt19937 rng{std::random_device{}()};
  bool leaving = false;
};

using sup_pointer = caf::stateful_actor<supervisor_state>*;

void start_link(sup_pointer self, const std::string& url) {
  auto& st = self->state;
  auto& slot = st.links[url];
  slot.restart_pending = false;
  if (slot.link)
    return;
  slot.open = slot.up = false;
  slot.link = spawn_peer_link(self->system(), st.ctx, url, caf::actor_cast<caf::actor>(self));
  self->monitor(slot.link);
  st.by_addr[slot.link.address()] = url;
}

void ensure_link(sup_pointer self, const std::string& url) {
  auto& st = self->state;
  if (st.leaving || url.empty() || is_self_url(*st.ctx, url) || st.refused.count(url))
    return;
  auto i = st.links.find(url);
  if (i != st.links.end() && i->second.link)
    return;
  // A link waiting out its backoff restarts now: the peer just spoke to us,
  // so it is back (a restarted node must not wait for a long backoff).
  start_link(self, url);
}

void stop_link(sup_pointer self, const std::string& url) {
  auto& st = self->state;
  auto i = st.links.find(url);
  if (i == st.links.end())
    return;
  if (i->second.link) {
    st.by_addr.erase(i->second.link.address());
    self->demonitor(i->second.link);
    // Not an exit: calls it carries may still be answered (a peer saying
    // GOODBYE finishes the calls it has), and failing them here would run
    // them twice.
    self->send(i->second.link, retire_atom::value);
  }
  answer_hellos(i->second);
  st.links.erase(i);
  st.ctx->routes.set_link(url, nullptr);
}

// The next delay: doubling from 100 ms, capped, with +-25 % jitter so a
// cluster that lost a node does not reconnect in lockstep.
std::chrono::milliseconds next_backoff(sup_pointer self, link_slot& slot) {
  using namespace std::chrono;
  auto cap = duration_cast<milliseconds>(duration<double>(self->state.ctx->config.reconnect_max_backoff));
  slot.backoff = slot.backoff.count() == 0 ? milliseconds{100} : std::min(cap, slot.backoff * 2);
  std::uniform_real_distribution<double> jitter(0.75, 1.25);
  return milliseconds{static_cast<long>(static_cast<double>(slot.backoff.count()) * jitter(self->state.rng))};
}

// The reason a link quit with, else CAF's rendering of the error.
std::string reason_text(const caf::error& reason) {
  const auto& ctx = reason.context();
  if (ctx.match_elements<std::string>())
    return ctx.get_as<std::string>(0);
  return caf::to_string(reason);
}

// Whether a link to `url` is still worth restarting: a peer we know of, or
// a seed.
bool wanted(const supervisor_state& st, const std::string& url) {
  return st.ctx->routes.contains(url) || st.seeds.count(url) != 0;
}

// Links to `url` again after the backoff (the slot is created if needed).
void schedule_restart(sup_pointer self, const std::string& url) {
  auto& slot = self->state.links[url];
  if (slot.link || slot.restart_pending)
    return;
  slot.restart_pending = true;
  auto delay = next_backoff(self, slot);
  MPREG_LOG(debug, "restarting the link to " << url << " in " << delay.count() << " ms");
  self->delayed_send(self, delay, restart_atom::value, url);
}

// The link to `url` is gone and may come back: seeds named by another name
// for that node are tried again too (the name may now lead elsewhere: a
// restarted container's new address).
void retry_aliases_of(sup_pointer self, const std::string& url) {
  auto& st = self->state;
  for (const auto& [alias, known] : st.aliases)
    if (known == url && st.seeds.count(alias))
      schedule_restart(self, alias);
}

void on_link_down(sup_pointer self, const caf::down_msg& dm) {
  auto& st = self->state;
  auto a = st.by_addr.find(dm.source);
  if (a == st.by_addr.end())
    return;
  auto url = a->second;
  st.by_addr.erase(a);
  auto i = st.links.find(url);
  if (i == st.links.end())
    return;
  bool was_up = i->second.up;
  i->second.link = nullptr;
  i->second.open = i->second.up = false;
  answer_hellos(i->second); // it failed: nothing better is coming soon
  st.ctx->routes.set_link(url, nullptr); // stop routing to it at once
  if (st.leaving) {
    st.links.erase(i);
    return;
  }
  retry_aliases_of(self, url);
  if (st.refused.count(url) || !wanted(st, url)) {
    st.links.erase(i);
    return;
  }
  // A seed that cannot be reached is named once at warn level (a mistyped
  // --peers must show without debug logs); a lost link the link named.
  // (An alias of a seed known by its advertised URL: that one is named.)
  if (!was_up && st.seeds.count(url) && !st.aliases.count(url) && !i->second.failure_logged) {
    i->second.failure_logged = true;
    MPREG_LOG(warn, "cannot link to seed " << url << ": " << reason_text(dm.reason)
                                           << "; retrying with backoff up to "
                                           << st.ctx->config.reconnect_max_backoff << " s");
  }
  schedule_restart(self, url);
}

// The part of a peer URL after host and port ("" or "/path").
std::string url_path(const std::string& url) {
  auto parts = peer_url_parts(url);
  return parts ? parts->path : std::string();
}

// Two of our links that reached one listener (one "IP:port", same path: a
// gateway may route paths to different nodes) go to one node: a seed named
// by an alias (`ws://localhost:P` for a node advertising `ws://127.0.0.1:P`)
// and the URL the node calls itself (HELLO and gossip name it so: its route
// has an advert). The node is known by the latter, as its other peers know
// it; the alias's link is dropped. A seed stays a seed under both names:
// the alias is tried again whenever the advertised URL's link goes down,
// since the name may lead to a new address by then.
void merge_aliases(sup_pointer self, const std::string& remote) {
  auto& st = self->state;
  if (remote.empty())
    return;
  std::map<std::string, std::string> known; // path -> advertised URL
  std::vector<std::string> others;
  for (const auto& [url, slot] : st.links) {
    if (!slot.link || !slot.open || slot.remote != remote)
      continue;
    auto route = st.ctx->routes.find(url);
    if (route && route->has_advert)
      known.emplace(url_path(url), url);
    else
      others.push_back(url);
  }
  for (const auto& alias : others) {
    auto k = known.find(url_path(alias));
    if (k == known.end())
      continue;
    auto seen = st.aliases.find(alias);
    if (seen != st.aliases.end() && seen->second == k->second)
      MPREG_LOG(debug, "peer " << alias << " is " << k->second << " again");
    else
      MPREG_LOG(info, "peer " << alias << " is " << k->second << " (both reach " << remote
                              << "); keeping the link to " << k->second);
    if (st.seeds.count(alias)) {
      st.seeds.insert(k->second);
      st.aliases[alias] = k->second;
    }
    stop_link(self, alias);
    st.ctx->routes.remove(alias, wall_seconds());
  }
}

caf::behavior supervisor_behavior(sup_pointer self, std::shared_ptr<node_context> ctx) {
  self->state.ctx = std::move(ctx);
  self->set_down_handler([self](caf::down_msg& dm) { on_link_down(self, dm); });
  return {
    [self](connect_atom, std::string& url, bool seed) {
      if (seed)
        self->state.seeds.insert(url);
      ensure_link(self, url);
    },
    [self](restart_atom, std::string& url) {
      auto& st = self->state;
      auto i = st.links.find(url);
      if (i == st.links.end() || !i->second.restart_pending || st.leaving)
        return;
      if (!wanted(st, url)) {
        st.links.erase(i); // it left or expired meanwhile
        return;
      }
      start_link(self, url);
    },
    [self](link_up_atom, std::string& url, caf::actor& link) {
      auto& st = self->state;
      auto i = st.links.find(url);
      if (i == st.links.end() || i->second.link != link)
        return; // a link we already stopped
      i->second.backoff = std::chrono::milliseconds{0};
      i->second.up = true;
      i->second.failure_logged = false;
      st.ctx->routes.set_link(url, link);
      st.ctx->routes.touch(url, wall_seconds());
      answer_hellos(i->second);
    },
    [self](link_open_atom, std::string& url, caf::actor& link, std::string& remote) {
      auto i = self->state.links.find(url);
      if (i == self->state.links.end() || i->second.link != link)
        return;
      i->second.open = true;
      i->second.remote = remote;
      merge_aliases(self, remote);
    },
    [self](link_refused_atom, std::string& url, std::string& why) {
      auto& st = self->state;
      MPREG_LOG(warn, "not linking to " << url << ": " << why);
      st.refused.insert(url);
      stop_link(self, url);
      st.ctx->routes.remove(url, wall_seconds());
    },
    [self](hello_atom, std::string& url, protocol::node_advert& advert,
           bool full) -> caf::response_promise {
      auto& st = self->state;
      st.ctx->routes.hello(url, advert, wall_seconds(), full);
      st.refused.erase(url);
      ensure_link(self, url);
      // Its link may be open already, beside a link to another of its names
      // (both given as seeds) that could not be told apart before this.
      if (auto open = st.links.find(url); open != st.links.end() && open->second.open)
        merge_aliases(self, open->second.remote);
      // ADDED should mean "routable from here": a request for the peer's
      // functions sent right after it must not get 1001. So the answer waits
      // for our link, unless no link is coming (ourselves, leaving), it is
      // up, or it has sent its own HELLO: the peer may be holding that
      // answer until its link to us is up, which waits for this answer.
      auto promise = self->make_response_promise();
      auto i = st.links.find(url);
      if (i == st.links.end() || !i->second.link || i->second.up || i->second.open)
        promise.deliver(true);
      else
        i->second.hello_waiters.push_back(promise);
      return promise;
    },
    [self](goodbye_atom, std::string& url) {
      auto& st = self->state;
      stop_link(self, url);
      st.ctx->routes.remove(url, wall_seconds());
      if (st.leaving)
        return;
      if (!st.seeds.count(url)) {
        MPREG_LOG(info, "peer " << url << " said GOODBYE");
        retry_aliases_of(self, url);
        return;
      }
      // A seed left on purpose, most often to restart (an upgrade, a new
      // config). The operator named it, and it may have no seeds of its
      // own to come back through: keep trying it, as after a crash.
      MPREG_LOG(info, "seed " << url << " said GOODBYE; linking again when it is back");
      schedule_restart(self, url);
      retry_aliases_of(self, url);
    },
    [self](forget_atom, std::string& url) {
      MPREG_LOG(info, "peer " << url << " expired (not seen within the dead-peer timeout)");
      if (!self->state.seeds.count(url))
        stop_link(self, url);
    },
    [self](announce_atom, std::string& fun) {
      auto& st = self->state;
      for (auto& [url, slot] : st.links)
        if (slot.link)
          self->send(slot.link, send_atom::value, hello_frame(*st.ctx, protocol::new_id(), &fun));
    },
    [self](rejoin_atom) { self->state.leaving = false; },
    [self](leave_atom) -> caf::response_promise {
      auto& st = self->state;
      st.leaving = true;
      auto promise = self->make_response_promise();
      auto remaining = std::make_shared<std::size_t>(0);
      for (auto& [url, slot] : st.links)
        if (slot.link) {
          ++*remaining;
          self->demonitor(slot.link);
          st.ctx->routes.set_link(url, nullptr);
          // Each link writes GOODBYE, closes and answers; we answer after all.
          self->request(slot.link, std::chrono::seconds(2), leave_atom::value)
            .then([remaining, promise](bool) mutable {
                    if (--*remaining == 0)
                      promise.deliver(true);
                  },
                  [remaining, promise](caf::error&) mutable {
                    if (--*remaining == 0)
                      promise.deliver(true);
                  });
        }
      for (auto& [url, slot] : st.links)
        answer_hellos(slot);
      st.links.clear();
      st.by_addr.clear();
      if (*remaining == 0)
        promise.deliver(true);
      return promise;
    },
  };
}

} // namespace

caf::actor spawn_peer_supervisor(caf::actor_system& sys, std::shared_ptr<node_context> ctx) {
  return sys.spawn(supervisor_behavior, std::move(ctx));
}

} // namespace mpreg
