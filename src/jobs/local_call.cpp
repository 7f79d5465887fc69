#include "jobs/local_call.hpp"

#include <string>

#include "json/limits.hpp"
#include "json/size_estimate.hpp"

namespace mpreg {

namespace {
call_outcome failed(const local_function& f, const std::string& why, json details) {
  call_outcome out;
  json d = json::make_object({{"function", f.name}, {"error", why}});
  if (!details.is_null())
    d["details"] = std::move(details);
  out.error = rpc_error(error_code::execution_failed, f.name + ": " + why, std::move(d));
  return out;
}
} // namespace

call_outcome invoke_function(const local_function& f, const json::array& args,
                             const json::object& kwargs) noexcept {
  try {
    call_outcome out{f.call(args, kwargs), std::nullopt};
    if (nested_deeper_than(out.value, detail::max_value_depth))
      return failed(f,
                    "result nested too deep: more than " +
                      std::to_string(detail::max_value_depth) + " levels of arrays and objects",
                    json::make_object({{"max_depth", detail::max_value_depth}}));
    return out;
  } catch (const call_error& e) {
    return failed(f, e.what(), e.details());
  } catch (const std::exception& e) {
    return failed(f, e.what(), {});
  } catch (...) {
    return failed(f, "unknown exception", {});
  }
}

} // namespace mpreg
