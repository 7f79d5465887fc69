// echo and echos, exactly as MPREG's `def echo(arg)` and `def echos(*args)`.
#include "registry/function_registry.hpp"

namespace mpreg {

namespace {

json echo(const json::array& args, const json::object& kwargs) {
  if (args.size() == 1 && kwargs.empty())
    return args[0];
  if (args.empty() && kwargs.size() == 1 && kwargs[0].key == "arg")
    return kwargs[0].value;
  if (args.empty() && kwargs.empty())
    throw argument_error("missing argument 1 ('arg')");
  if (!kwargs.empty()) {
    for (const auto& m : kwargs)
      if (m.key != "arg")
        throw argument_error("unexpected keyword argument '" + m.key + "'");
    throw argument_error("argument 'arg' given twice");
  }
  throw argument_error("takes 1 argument, got " + std::to_string(args.size()));
}

json echos(const json::array& args, const json::object& kwargs) {
  if (!kwargs.empty())
    throw argument_error("takes no keyword arguments, got '" + kwargs[0].key + "'");
  return json{args};
}

} // namespace

void add_builtins(function_registry& registry) {
  // Both only copy their input: cheap enough to run on the job actor.
  registry.add(local_function{"echo", echo, {}, true});
  registry.add(local_function{"echos", echos, {}, true});
}

} // namespace mpreg
