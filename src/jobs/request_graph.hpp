// The dependency graph of one request (PROTOCOL.md "References and the
// dependency graph"): which command consumes which, in what order they may
// run, and which are sinks. A plain class: the job actor drives it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "mpreg/messages.hpp"

namespace mpreg {

class request_graph {
public:
  /// Builds the graph; throws protocol::protocol_error (1006) on no commands, duplicate
  /// names or a cycle. The request must outlive the graph.
  explicit request_graph(const request& req);

  std::size_t size() const noexcept { return nodes_.size(); }
  /// Commands this one consumes (indices, no duplicates).
  const std::vector<std::size_t>& dependencies(std::size_t i) const { return nodes_[i].deps; }
  /// Commands that consume this one.
  const std::vector<std::size_t>& dependents(std::size_t i) const { return nodes_[i].users; }
  /// True when no other command consumes this one's result.
  bool is_sink(std::size_t i) const { return nodes_[i].users.empty(); }
  /// Commands with no dependencies: they start at once.
  std::vector<std::size_t> roots() const;

  /// args and kwargs of command i with every reference replaced by its
  /// producer's result. `results[j]` must be set for every dependency j.
  std::pair<json::array, json::object> resolve(std::size_t i,
                                               const std::vector<std::optional<json>>& results) const;

  /// The encoded size of resolve(i, ...)'s arguments, estimated without
  /// building them: a reference to j counts `result_sizes[j]` each time it
  /// occurs, literal parts count like encoded_size_estimate. Stops once past
  /// `limit` (the value returned is then > limit). Lets the job refuse
  /// reference amplification (one result referenced thousands of times)
  /// before it allocates anything.
  std::size_t resolved_size(std::size_t i, const std::vector<std::size_t>& result_sizes,
                            std::size_t limit) const;

private:
  struct node {
    std::vector<std::size_t> deps;
    std::vector<std::size_t> users;
  };
  /// Up to this many commands, names are found by a scan instead of index_.
  static constexpr std::size_t small_request = 8;
  /// The command named `name`, if any.
  std::optional<std::size_t> find(const std::string& name) const;
  /// Which commands are already in the dependency list being built.
  struct dep_marks {
    explicit dep_marks(std::size_t n) : commands(n) {}
    /// Appends `dep` to `deps` (the list of `user`) unless it is there.
    bool add(std::size_t dep, std::size_t user, std::vector<std::size_t>& deps);
    static constexpr std::size_t scan_limit = 16;
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    std::size_t commands;
    std::vector<std::size_t> user_of; // dep -> last user; empty until a list is long
  };
  void collect(const json& v, std::size_t self, std::vector<std::size_t>& deps,
               dep_marks& marks) const;
  json substitute(const json& v, std::size_t self,
                  const std::vector<std::optional<json>>& results) const;
  void check_acyclic() const;
  bool measure(const json& v, std::size_t self, const std::vector<std::size_t>& result_sizes,
               std::size_t limit, std::size_t& total) const;

  const request& req_;
  std::unordered_map<std::string, std::size_t> index_; // empty for small requests
  std::vector<node> nodes_;
};

} // namespace mpreg
