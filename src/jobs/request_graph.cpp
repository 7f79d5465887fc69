#include "jobs/request_graph.hpp"

#include <algorithm>

#include "json/size_estimate.hpp"
#include "protocol/codec.hpp"

namespace mpreg {

namespace {
[[noreturn]] void invalid(std::string message, json details) {
  throw protocol::protocol_error(
    rpc_error(error_code::invalid_request, std::move(message), std::move(details)));
}
} // namespace

request_graph::request_graph(const request& req) : req_(req), nodes_(req.cmds.size()) {
  // The codec refuses an empty `cmds` on the wire; in-process requests come
  // here directly and must get the same 1006 (not an empty result).
  if (req.cmds.empty())
    invalid("field 'cmds' must not be empty", json::make_object({{"field", "cmds"}}));
  auto duplicate = [&](std::size_t i) {
    invalid("duplicate command name '" + req.cmds[i].name + "'",
            json::make_object({{"name", req.cmds[i].name}}));
  };
  if (req.cmds.size() <= small_request) {
    for (std::size_t i = 1; i < req.cmds.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (req.cmds[j].name == req.cmds[i].name)
          duplicate(i);
  } else {
    index_.reserve(req.cmds.size());
    for (std::size_t i = 0; i < req.cmds.size(); ++i)
      if (!index_.emplace(req.cmds[i].name, i).second)
        duplicate(i);
  }
  bool any_reference = false;
  dep_marks marks(req.cmds.size());
  for (std::size_t i = 0; i < req.cmds.size(); ++i) {
    auto& deps = nodes_[i].deps;
    for (const auto& a : req.cmds[i].args)
      collect(a, i, deps, marks);
    for (const auto& m : req.cmds[i].kwargs)
      collect(m.value, i, deps, marks); // keys are never references
    for (auto d : deps)
      nodes_[d].users.push_back(i);
    any_reference = any_reference || !deps.empty();
  }
  if (any_reference) // without references there is nothing to order
    check_acyclic();
}

std::optional<std::size_t> request_graph::find(const std::string& name) const {
  if (index_.empty()) { // a small request: a scan beats hashing
    for (std::size_t i = 0; i < req_.cmds.size(); ++i)
      if (req_.cmds[i].name == name)
        return i;
    return std::nullopt;
  }
  auto i = index_.find(name);
  if (i == index_.end())
    return std::nullopt;
  return i->second;
}

bool request_graph::dep_marks::add(std::size_t dep, std::size_t user, std::vector<std::size_t>& deps) {
  // A scan while the list is short; past that, one mark per command (a
  // command naming 100,000 others must not cost 10^10 comparisons).
  if (deps.size() < scan_limit) {
    if (std::find(deps.begin(), deps.end(), dep) != deps.end())
      return false;
  } else {
    if (user_of.size() < commands) {
      user_of.assign(commands, npos);
      for (auto d : deps)
        user_of[d] = user;
    }
    if (user_of[dep] == user)
      return false;
  }
  if (user_of.size() == commands)
    user_of[dep] = user;
  deps.push_back(dep);
  return true;
}

void request_graph::collect(const json& v, std::size_t self, std::vector<std::size_t>& deps,
                            dep_marks& marks) const {
  switch (v.type()) {
    case json::kind::string: {
      auto i = find(v.as_string());
      // A command's own name in its own arguments is a literal string.
      if (i && *i != self)
        marks.add(*i, self, deps);
      break;
    }
    case json::kind::array:
      for (const auto& e : v.as_array())
        collect(e, self, deps, marks);
      break;
    case json::kind::object:
      for (const auto& m : v.as_object())
        collect(m.value, self, deps, marks);
      break;
    default:
      break;
  }
}

void request_graph::check_acyclic() const {
  // Kahn's algorithm: whatever cannot be ordered sits on (or behind) a cycle.
  std::vector<std::size_t> pending(nodes_.size());
  std::vector<std::size_t> ready;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    pending[i] = nodes_[i].deps.size();
    if (pending[i] == 0)
      ready.push_back(i);
  }
  std::size_t ordered = 0;
  while (!ready.empty()) {
    auto i = ready.back();
    ready.pop_back();
    ++ordered;
    for (auto u : nodes_[i].users)
      if (--pending[u] == 0)
        ready.push_back(u);
  }
  if (ordered == nodes_.size())
    return;
  json::array names;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (pending[i] > 0)
      names.emplace_back(req_.cmds[i].name);
  std::string list;
  for (const auto& n : names)
    list += (list.empty() ? "" : ", ") + n.as_string();
  invalid("dependency cycle among commands: " + list,
          json::make_object({{"cycle", json{std::move(names)}}}));
}

std::vector<std::size_t> request_graph::roots() const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].deps.empty())
      out.push_back(i);
  return out;
}

json request_graph::substitute(const json& v, std::size_t self,
                               const std::vector<std::optional<json>>& results) const {
  switch (v.type()) {
    case json::kind::string: {
      auto i = find(v.as_string());
      if (i && *i != self)
        return *results[*i];
      return v;
    }
    case json::kind::array: {
      json::array out;
      out.reserve(v.size());
      for (const auto& e : v.as_array())
        out.push_back(substitute(e, self, results));
      return json{std::move(out)};
    }
    case json::kind::object: {
      json::object out;
      out.reserve(v.size());
      for (const auto& m : v.as_object())
        out.push_back(json_member{m.key, substitute(m.value, self, results)});
      return json{std::move(out)};
    }
    default:
      return v;
  }
}

std::pair<json::array, json::object>
request_graph::resolve(std::size_t i, const std::vector<std::optional<json>>& results) const {
  const auto& cmd = req_.cmds[i];
  if (nodes_[i].deps.empty())
    return {cmd.args, cmd.kwargs};
  json::array args;
  args.reserve(cmd.args.size());
  for (const auto& a : cmd.args)
    args.push_back(substitute(a, i, results));
  json::object kwargs;
  kwargs.reserve(cmd.kwargs.size());
  for (const auto& m : cmd.kwargs)
    kwargs.push_back(json_member{m.key, substitute(m.value, i, results)});
  return {std::move(args), std::move(kwargs)};
}

bool request_graph::measure(const json& v, std::size_t self,
                            const std::vector<std::size_t>& result_sizes, std::size_t limit,
                            std::size_t& total) const {
  // A reference stands for its producer's result, as often as it occurs.
  auto referenced = [&](const std::string& s) -> std::optional<std::size_t> {
    auto i = find(s);
    if (i && *i != self)
      return result_sizes[*i];
    return std::nullopt;
  };
  return add_encoded_size(v, referenced, limit, total);
}

std::size_t request_graph::resolved_size(std::size_t i,
                                         const std::vector<std::size_t>& result_sizes,
                                         std::size_t limit) const {
  const auto& cmd = req_.cmds[i];
  std::size_t total = 4; // [] and {}
  for (const auto& a : cmd.args)
    if (!measure(a, i, result_sizes, limit, total))
      return total;
  for (const auto& m : cmd.kwargs) {
    total += m.key.size() + 4;
    if (!measure(m.value, i, result_sizes, limit, total))
      return total;
  }
  return total;
}

} // namespace mpreg
