#include "peers/routing_table.hpp"

#include <algorithm>
#include <string_view>
#include <unordered_set>

namespace mpreg {

void routing_table::hello(const std::string& url, const protocol::node_advert& advert, double now,
                          bool full) {
  std::lock_guard guard{mutex_};
  gone_.erase(url); // it came back
  auto& p = peers_[url];
  p.url = url;
  if (p.has_advert && !full) {
    // A later HELLO carries only the new functions (one, usually): merge.
    // Against a set, not a scan per name: two big HELLOs must not hold the
    // table's lock for n x m comparisons.
    auto& funs = p.advert.funs;
    funs.reserve(funs.size() + advert.funs.size()); // the views below stay valid
    std::unordered_set<std::string_view> have(funs.begin(), funs.end());
    for (const auto& f : advert.funs)
      if (have.insert(f).second)
        funs.push_back(f);
    for (const auto& [f, locs] : advert.fun_locs)
      p.advert.fun_locs[f] = locs;
    if (!advert.locs.empty())
      p.advert.locs = advert.locs;
    if (!advert.advertised_urls.empty())
      p.advert.advertised_urls = advert.advertised_urls;
    if (!advert.cluster_id.empty())
      p.advert.cluster_id = advert.cluster_id;
  } else {
    p.advert = advert;
    p.has_advert = true;
  }
  p.last_seen = std::max(p.last_seen, now);
}

bool routing_table::gossip(const protocol::gossip_entry& entry) {
  std::lock_guard guard{mutex_};
  if (auto g = gone_.find(entry.url); g != gone_.end()) {
    if (entry.last_seen <= g->second)
      return false; // news from before it left
    gone_.erase(g);
  }
  auto i = peers_.find(entry.url);
  bool is_new = i == peers_.end();
  auto& p = peers_[entry.url];
  if (is_new || !p.has_advert || entry.last_seen > p.last_seen) {
    p.url = entry.url;
    p.advert = entry.advert;
    p.has_advert = true;
    p.last_seen = std::max(p.last_seen, entry.last_seen);
  }
  return is_new;
}

void routing_table::touch(const std::string& url, double now) {
  std::lock_guard guard{mutex_};
  if (auto i = peers_.find(url); i != peers_.end())
    i->second.last_seen = std::max(i->second.last_seen, now);
}

void routing_table::set_link(const std::string& url, caf::actor link) {
  std::lock_guard guard{mutex_};
  if (auto i = peers_.find(url); i != peers_.end()) {
    i->second.link = std::move(link);
    i->second.unresponsive = false; // a new link (or none) starts afresh
  } else if (link) {
    auto& p = peers_[url];
    p.url = url;
    p.link = std::move(link);
  }
}

void routing_table::remove(const std::string& url, double now) {
  std::lock_guard guard{mutex_};
  peers_.erase(url);
  gone_[url] = now;
}

std::vector<std::string> routing_table::expire(double now, double timeout) {
  std::lock_guard guard{mutex_};
  std::vector<std::string> out;
  for (auto i = peers_.begin(); i != peers_.end();) {
    // A peer we hold a live link to is alive, whatever gossip says.
    if (!i->second.link && i->second.last_seen > 0 && now - i->second.last_seen > timeout) {
      out.push_back(i->first);
      gone_[i->first] = i->second.last_seen;
      i = peers_.erase(i);
    } else {
      ++i;
    }
  }
  // Tombstones only need to outlive stale gossip.
  for (auto g = gone_.begin(); g != gone_.end();)
    g = (now - g->second > 4 * timeout) ? gone_.erase(g) : std::next(g);
  return out;
}

std::vector<route> routing_table::candidates(const std::string& fun,
                                             const std::vector<std::string>& locs) const {
  std::lock_guard guard{mutex_};
  std::vector<route> out;
  for (const auto& [url, p] : peers_) {
    if (!p.link || !p.has_advert)
      continue;
    const auto& a = p.advert;
    if (std::find(a.funs.begin(), a.funs.end(), fun) == a.funs.end())
      continue;
    auto fl = a.fun_locs.find(fun);
    bool all = std::all_of(locs.begin(), locs.end(), [&](const std::string& l) {
      return std::find(a.locs.begin(), a.locs.end(), l) != a.locs.end() ||
             (fl != a.fun_locs.end() &&
              std::find(fl->second.begin(), fl->second.end(), l) != fl->second.end());
    });
    if (all)
      out.push_back(route{url, p.link, p.unresponsive});
  }
  return out;
}

void routing_table::set_unresponsive(const std::string& url, const caf::actor& link,
                                     bool unresponsive) {
  std::lock_guard guard{mutex_};
  if (auto i = peers_.find(url); i != peers_.end() && i->second.link == link)
    i->second.unresponsive = unresponsive;
}

bool routing_table::contains(const std::string& url) const {
  std::lock_guard guard{mutex_};
  return peers_.count(url) > 0;
}

std::optional<peer_info> routing_table::find(const std::string& url) const {
  std::lock_guard guard{mutex_};
  auto i = peers_.find(url);
  if (i == peers_.end())
    return std::nullopt;
  return i->second;
}

std::vector<peer_info> routing_table::peers() const {
  std::lock_guard guard{mutex_};
  std::vector<peer_info> out;
  for (const auto& kv : peers_)
    out.push_back(kv.second);
  return out;
}

} // namespace mpreg
