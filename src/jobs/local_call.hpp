// Running one registered function and turning whatever it does (a value, an
// exception, bad arguments) into an outcome. Never throws.
#pragma once

#include <optional>
#include <string>

#include "mpreg/error.hpp"
#include "mpreg/json.hpp"
#include "registry/function_registry.hpp"

namespace mpreg {

/// A command's result or its failure.
struct call_outcome {
  json value;
  std::optional<rpc_error> error;
};

/// Calls f; an exception becomes error 1003 naming the function.
call_outcome invoke_function(const local_function& f, const json::array& args,
                             const json::object& kwargs) noexcept;

} // namespace mpreg
