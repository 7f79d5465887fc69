// mpreg::node: owns the node's context and its long-lived actors (front,
// bridge) and runs the start/stop sequence.
#include "mpreg/node.hpp"

#include <algorithm>
#include <stdexcept>

#include <caf/all.hpp>

#include "bridge/bridge_actor.hpp"
#include "config/node_options.hpp"
#include "gossip/gossip_actor.hpp"
#include "peers/cluster_messages.hpp"
#include "peers/peer_supervisor.hpp"
#include "jobs/job_actor.hpp"
#include "node/node_context.hpp"
#include "scheduler/tuned_coordinator.hpp"
#include "util/log.hpp"

namespace mpreg {

namespace {

// The in-process entry: every request becomes a job that answers the sender
// directly (delegate), so the front actor never waits.
node_actor::behavior_type front_behavior(node_actor::pointer self,
                                         std::shared_ptr<node_context> ctx) {
  return {
    [self, ctx](request& req) -> caf::delegated<response> {
      auto job = spawn_job(self->system(), ctx);
      return self->delegate(job, std::move(req));
    },
  };
}

// Settings built in code get the command line's checks (a port of 87841
// would otherwise bind 22305, a gossip interval of 0 spin) and its URL
// normal form, so that a seed is one key however it was written.
settings checked(settings s) {
  try {
    return config::checked_settings(std::move(s));
  } catch (const config::config_error& e) {
    throw std::invalid_argument(e.what());
  }
}

} // namespace

struct node::impl {
  impl(caf::actor_system& sys, settings s)
    : system(sys), ctx(std::make_shared<node_context>(sys, checked(std::move(s)))) {
    add_builtins(ctx->functions);
    front = system.spawn(front_behavior, ctx);
    ctx->io = std::make_shared<transport::io_host>(
      "mpreg.io", std::chrono::microseconds(ctx->config.io_spin_us));
    // On the tuned scheduler, its first worker runs the loop between actors
    // (scheduler/io_hosting.hpp); otherwise (or when it already runs another
    // node's) the loop gets a thread of its own.
    auto tuned = dynamic_cast<scheduler::tuned_coordinator*>(&system.scheduler());
    ctx->io->start(tuned ? tuned->io_runner() : nullptr);
    ctx->link_transport = std::make_shared<transport::ws_client_endpoint>(
      transport::ws_client_options{ctx->config.max_message_size, std::chrono::milliseconds{1000},
                                   std::chrono::microseconds(ctx->config.io_spin_us)},
      ctx->io);
    // The cluster actors live as long as the node; sessions reach them
    // through the context, which never changes them.
    ctx->supervisor = spawn_peer_supervisor(system, ctx);
    ctx->gossip = spawn_gossip(system, ctx, ctx->supervisor);
    // A function registered later is announced to every peer at once.
    ctx->functions.on_add([sup = caf::actor_cast<caf::weak_actor_ptr>(ctx->supervisor)](
                            const local_function& f) {
      if (auto strong = sup.lock())
        caf::anon_send(caf::actor_cast<caf::actor>(strong), announce_atom::value, f.name);
    });
  }

  caf::actor_system& system;
  std::shared_ptr<node_context> ctx;
  node_actor front;
  bridge_actor bridge;
  std::string url;
  bool running = false;
};

node::node(caf::actor_system& system, settings s)
  : impl_(std::make_unique<impl>(system, std::move(s))) {}

node::~node() {
  stop();
  auto& ctx = *impl_->ctx;
  for (auto& a : {caf::actor_cast<caf::actor>(impl_->front), ctx.gossip, ctx.supervisor})
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  ctx.functions.on_add(nullptr);
  ctx.pool.stop();
  auto links = std::atomic_load(&ctx.link_transport);
  links->shutdown(); // closes the links while the loop runs
  ctx.io->stop();    // no handler runs after this
  // A link starting now finds no endpoint; one that took it a moment ago
  // destroys it when its (refused) connect returns.
  std::atomic_store(&ctx.link_transport, std::shared_ptr<transport::ws_client_endpoint>{});
  links.reset();
}

void node::add_raw_function(std::string name, raw_function fn, function_options options) {
  if (name.empty())
    throw std::invalid_argument("a function needs a name");
  if (!fn)
    throw std::invalid_argument("function '" + name + "' is empty");
  local_function f;
  f.name = std::move(name);
  f.call = std::move(fn);
  f.resources.insert(options.resources.begin(), options.resources.end());
  f.run_inline = options.run_inline;
  impl_->ctx->functions.add(std::move(f));
}

std::string node::start() {
  auto& st = *impl_;
  if (st.running)
    return st.url;
  st.ctx->stopping.store(false); // a node may start again after stop()
  st.bridge = spawn_bridge(st.system, st.ctx);
  caf::scoped_actor self{st.system};
  std::uint16_t port = 0;
  std::string why = "no answer from the bridge";
  self->request(st.bridge, std::chrono::seconds(30), listen_atom::value)
    .receive(
      [&](std::uint16_t p, std::string& e) {
        port = p;
        why = std::move(e);
      },
      [&](caf::error& e) { why = st.system.render(e); });
  if (port == 0) {
    self->send_exit(st.bridge, caf::exit_reason::user_shutdown);
    st.bridge = nullptr;
    throw std::runtime_error(why);
  }
  auto& cfg = st.ctx->config;
  cfg.port = port;
  st.url = config::listen_url(cfg.host, port);
  if (cfg.advertised_urls.empty())
    cfg.advertised_urls.push_back(st.url);
  st.running = true;
  // Seeds: linked now, and retried with backoff until they answer.
  auto seeds = cfg.peers;
  if (!cfg.connect.empty())
    seeds.push_back(cfg.connect);
  caf::anon_send(st.ctx->supervisor, rejoin_atom::value); // after a stop(): link again
  for (const auto& url : seeds)
    caf::anon_send(st.ctx->supervisor, connect_atom::value, url, true);
  MPREG_LOG(info, "node '" << cfg.name << "' listening on " << st.url << " with "
                           << st.ctx->functions.names().size() << " functions");
  return st.url;
}

void node::stop() {
  auto& st = *impl_;
  if (!st.running)
    return;
  st.running = false;
  caf::scoped_actor self{st.system};
  // From here on, requests are cancelled (1002), including those whose calls
  // our own GOODBYE is about to cut off.
  st.ctx->stopping.store(true);
  // GOODBYE first, so peers stop routing here before our connections drop.
  self->request(st.ctx->supervisor, std::chrono::seconds(3), leave_atom::value)
    .receive([](bool) {},
             [&](caf::error& e) { MPREG_LOG(warn, "leaving the cluster: " << st.system.render(e)); });
  self->request(st.bridge, std::chrono::seconds(10), stop_atom::value)
    .receive([](bool) {},
             [&](caf::error& e) {
               MPREG_LOG(warn, "stopping the listener: " << st.system.render(e));
             });
  self->send_exit(st.bridge, caf::exit_reason::user_shutdown);
  st.bridge = nullptr;
  MPREG_LOG(info, "node '" << st.ctx->config.name << "' stopped");
}

std::string node::url() const {
  return impl_->url;
}

const settings& node::config() const {
  return impl_->ctx->config;
}

node_actor node::handle() const {
  return impl_->front;
}

std::vector<std::string> node::functions() const {
  return impl_->ctx->functions.names();
}

std::vector<std::string> node::peers() const {
  std::vector<std::string> up;
  for (const auto& p : impl_->ctx->routes.peers())
    if (p.link && p.has_advert)
      up.push_back(p.url);
  std::sort(up.begin(), up.end());
  return up;
}

} // namespace mpreg
