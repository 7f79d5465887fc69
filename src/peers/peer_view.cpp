#include "peers/peer_view.hpp"

#include "config/node_options.hpp"
#include "node/node_context.hpp"
#include "util/clock.hpp"

namespace mpreg {

namespace {
json strings(const std::vector<std::string>& xs) {
  json::array a;
  for (const auto& x : xs)
    a.emplace_back(x);
  return json{std::move(a)};
}

json advert_json(const protocol::node_advert& a) {
  json fl = json::make_object({});
  for (const auto& [f, locs] : a.fun_locs)
    fl[f] = strings(locs);
  return json::make_object({{"functions", strings(a.funs)},
                            {"resources", strings(a.locs)},
                            {"function_resources", std::move(fl)},
                            {"advertised_urls", strings(a.advertised_urls)}});
}
} // namespace

std::optional<config::url_parts> peer_url_parts(const std::string& url) {
  try {
    return config::parse_url(url);
  } catch (const config::config_error&) {
    return std::nullopt;
  }
}

std::optional<std::string> normal_peer_url(const std::string& url) {
  auto parts = peer_url_parts(url);
  return parts ? std::optional<std::string>(parts->str()) : std::nullopt;
}

namespace {
bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]";
}
} // namespace

bool is_self_url(const node_context& ctx, const std::string& url) {
  auto u = peer_url_parts(url);
  if (!u)
    return false;
  for (const auto& advertised : ctx.config.advertised_urls) {
    auto mine = peer_url_parts(advertised);
    if (!mine)
      continue;
    if (mine->str() == u->str())
      return true;
    if (!u->port.empty() && u->port == mine->port && is_loopback(u->host) &&
        is_loopback(mine->host))
      return true;
  }
  return false;
}

protocol::node_advert self_advert(const node_context& ctx) {
  protocol::node_advert a;
  a.funs = ctx.functions.names();
  a.locs.assign(ctx.resources.begin(), ctx.resources.end());
  a.cluster_id = ctx.config.cluster_id;
  a.advertised_urls = ctx.config.advertised_urls;
  a.fun_locs = ctx.functions.function_resources();
  return a;
}

protocol::gossip_entry self_entry(const node_context& ctx, double now) {
  return protocol::gossip_entry{ctx.config.advertised_urls.empty() ? std::string{}
                                                                   : ctx.config.advertised_urls[0],
                                self_advert(ctx), now};
}

json cluster_status(const node_context& ctx) {
  double now = wall_seconds();
  json self = advert_json(self_advert(ctx));
  self["url"] = ctx.config.advertised_urls.empty() ? json{} : json{ctx.config.advertised_urls[0]};
  self["name"] = ctx.config.name;
  json::array peers;
  for (const auto& p : ctx.routes.peers()) {
    json entry = p.has_advert ? advert_json(p.advert) : json::make_object({});
    entry["url"] = p.url;
    entry["link"] = p.link ? "up" : "down";
    entry["last_seen"] = p.last_seen;
    entry["seen_seconds_ago"] = p.last_seen > 0 ? json{now - p.last_seen} : json{};
    peers.push_back(std::move(entry));
  }
  // This node's name, functions and resources also sit at the top level:
  // what tools and scripts read first.
  return json::make_object({
    {"name", ctx.config.name},
    {"functions", *self.find("functions")},
    {"resources", *self.find("resources")},
    {"cluster_id", ctx.config.cluster_id},
    {"node", std::move(self)},
    {"peers", json{std::move(peers)}},
    {"sessions", static_cast<unsigned long long>(ctx.sessions.size())},
    {"requests_total", static_cast<unsigned long long>(ctx.requests_total.load())},
    {"requests_failed", static_cast<unsigned long long>(ctx.requests_failed.load())},
  });
}

} // namespace mpreg
