// The functions this node runs itself. Thread-safe: jobs and sessions look
// functions up on CAF worker threads while the user registers more.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "mpreg/function.hpp"

namespace mpreg {

/// A registered function as the runtime sees it.
struct local_function {
  std::string name;
  raw_function call;
  std::set<std::string> resources; ///< the function's own resources
  bool run_inline = false;
};

class function_registry {
public:
  using listener = std::function<void(const local_function&)>;

  /// Adds or replaces a function; tells the listener (the cluster announces it).
  void add(local_function f);
  /// The function, or nullptr. The returned pointer stays valid: entries are
  /// shared and replacing one does not free a copy in use.
  std::shared_ptr<const local_function> find(const std::string& name) const;
  /// Names of every function, sorted.
  std::vector<std::string> names() const;
  /// Every function's own resources (for HELLO's fun_locs).
  std::map<std::string, std::vector<std::string>> function_resources() const;
  /// Called after each add (from the adding thread).
  void on_add(listener l);

private:
  mutable std::shared_mutex mutex_;
  std::map<std::string, std::shared_ptr<const local_function>> functions_;
  listener listener_;
};

/// Registers echo and echos (PROTOCOL.md "Built-in commands").
void add_builtins(function_registry& registry);

} // namespace mpreg
