#include "registry/function_registry.hpp"

namespace mpreg {

void function_registry::add(local_function f) {
  auto entry = std::make_shared<const local_function>(std::move(f));
  listener l;
  {
    std::unique_lock guard{mutex_};
    functions_[entry->name] = entry;
    l = listener_;
  }
  if (l)
    l(*entry);
}

std::shared_ptr<const local_function> function_registry::find(const std::string& name) const {
  std::shared_lock guard{mutex_};
  auto i = functions_.find(name);
  return i == functions_.end() ? nullptr : i->second;
}

std::vector<std::string> function_registry::names() const {
  std::shared_lock guard{mutex_};
  std::vector<std::string> out;
  out.reserve(functions_.size());
  for (const auto& kv : functions_)
    out.push_back(kv.first);
  return out;
}

std::map<std::string, std::vector<std::string>> function_registry::function_resources() const {
  std::shared_lock guard{mutex_};
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [name, f] : functions_)
    if (!f->resources.empty())
      out[name] = std::vector<std::string>(f->resources.begin(), f->resources.end());
  return out;
}

void function_registry::on_add(listener l) {
  std::unique_lock guard{mutex_};
  listener_ = std::move(l);
}

} // namespace mpreg
