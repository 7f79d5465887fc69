#include "node/node_context.hpp"

#include <algorithm>

#include "util/cpus.hpp"

namespace mpreg {

namespace {
std::size_t pool_size(const settings& s) {
  if (s.worker_threads > 0)
    return s.worker_threads;
  return std::max<std::size_t>(4, 2 * util::usable_cpus());
}
} // namespace

node_context::node_context(caf::actor_system& sys, settings s)
  : system(sys),
    config(std::move(s)),
    resources(config.resources.begin(), config.resources.end()),
    // Blocking functions may hold threads: the pool grows up to 64x its core.
    pool(pool_size(config), std::max<std::size_t>(256, 64 * pool_size(config))) {}

std::shared_ptr<const local_function>
node_context::local_match(const std::string& fun, const std::vector<std::string>& locs) const {
  auto f = functions.find(fun);
  if (!f)
    return nullptr;
  for (const auto& l : locs)
    if (!resources.count(l) && !f->resources.count(l))
      return nullptr;
  return f;
}

} // namespace mpreg
