// The message model: a client request and its response, as C++ values.
//
// The same types travel over WebSocket (encoded per PROTOCOL.md) and between
// actors in-process (send an mpreg::request to node::handle(), receive an
// mpreg::response).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mpreg/error.hpp"
#include "mpreg/json.hpp"

namespace mpreg {

/// One named call of a request.
struct command {
  std::string name;               ///< unique within the request; other commands refer to it
  std::string fun;                ///< function to call
  json::array args;               ///< positional arguments (may hold references)
  json::object kwargs;            ///< keyword arguments (values may hold references)
  std::vector<std::string> locs;  ///< resources the executing node must have
};

/// A client request ({"role": "rpc", ...}).
struct request {
  std::string u;                  ///< request id, echoed in the response
  std::vector<command> cmds;      ///< the calls to run
  std::optional<double> timeout;  ///< deadline for the whole request, in seconds
};

/// The answer to one request: either `r` (sink name -> result) or `error`.
struct response {
  std::string u;
  std::optional<json> r;          ///< object mapping every sink command to its result
  std::optional<rpc_error> error; ///< set on failure (then r is empty)

  bool ok() const noexcept { return !error.has_value(); }
};

} // namespace mpreg
