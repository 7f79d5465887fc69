// The node's open client sessions. The listener's stop asks each of them to
// answer the requests still running ("node is stopping") before their
// connections close; the status page counts them.
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <caf/actor_control_block.hpp>
#include <caf/fwd.hpp>

namespace mpreg {

class session_registry {
public:
  /// Weak: the registry keeps no session alive.
  void add(caf::actor_id id, caf::weak_actor_ptr session) {
    std::lock_guard<std::mutex> lock(m_);
    live_.emplace(id, std::move(session));
  }
  void remove(caf::actor_id id) {
    std::lock_guard<std::mutex> lock(m_);
    live_.erase(id);
  }
  /// The sessions still running.
  std::vector<caf::strong_actor_ptr> snapshot() const {
    std::lock_guard<std::mutex> lock(m_);
    std::vector<caf::strong_actor_ptr> out;
    out.reserve(live_.size());
    for (const auto& [id, weak] : live_)
      if (auto strong = weak.lock())
        out.push_back(std::move(strong));
    return out;
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(m_);
    return live_.size();
  }

private:
  mutable std::mutex m_;
  std::unordered_map<caf::actor_id, caf::weak_actor_ptr> live_;
};

} // namespace mpreg
