// What every actor of one node shares: settings, functions, the worker pool.
// Owned by mpreg::node; actors hold it by shared_ptr so it outlives them.
#pragma once

#include <atomic>
#include <memory>
#include <set>
#include <string>

#include <caf/fwd.hpp>

#include "jobs/worker_pool.hpp"
#include "mpreg/settings.hpp"
#include "registry/function_registry.hpp"

namespace mpreg {

struct node_context {
  node_context(caf::actor_system& sys, settings s);

  caf::actor_system& system;
  settings config;                  ///< after start: bound port, advertised URLs
  std::set<std::string> resources;  ///< config.resources as a set
  function_registry functions;
  worker_pool pool;

  /// True when this node itself can run `fun` with `locs`.
  std::shared_ptr<const local_function> local_match(const std::string& fun,
                                                    const std::vector<std::string>& locs) const;

  // Counters for the status page.
  std::atomic<std::uint64_t> requests_total{0};
  std::atomic<std::uint64_t> requests_failed{0};
  std::atomic<std::uint64_t> sessions_open{0};
};

} // namespace mpreg
