// Error codes of the MPREG protocol and the error value carried in responses.
#pragma once

#include <stdexcept>
#include <string>

#include "mpreg/json.hpp"

namespace mpreg {

/// The error codes of PROTOCOL.md ("ext" codes are our compatible extensions).
enum class error_code : int {
  unknown_message_type = 1000, ///< unknown server message type
  command_not_found = 1001,    ///< no node has the function with all requested locs
  internal_error = 1002,       ///< internal server error
  execution_failed = 1003,     ///< a function raised, returned an error or got bad arguments
  invalid_role = 1004,         ///< invalid `role`
  cluster_id_mismatch = 1005,  ///< HELLO from another cluster
  invalid_request = 1006,      ///< ext: malformed JSON, wrong types, duplicates, cycles, too large
  deadline_exceeded = 1007,    ///< ext: the request's `timeout` expired
  node_lost = 1008,            ///< ext: the node running a command was lost, no other could take it
  unauthorized = 1009,         ///< ext: missing or wrong credentials
};

/// The `error` object of a response: {"code": int, "message": str, "details": any}.
struct rpc_error {
  int code = static_cast<int>(error_code::internal_error);
  std::string message;
  json details;

  rpc_error() = default;
  rpc_error(error_code c, std::string msg, json det = {})
    : code(static_cast<int>(c)), message(std::move(msg)), details(std::move(det)) {}
  rpc_error(int c, std::string msg, json det = {})
    : code(c), message(std::move(msg)), details(std::move(det)) {}

  json to_json() const;
  /// Reads {"code", "message", "details"}; tolerant of missing fields.
  static rpc_error from_json(const json& j);
};

/// Throw this from a registered function to fail the call with error 1003.
/// The error's message is "<function>: <message>" and its details are
/// {"command", "function", "error": message, "details": your details}; any
/// other exception gives the same without "details", its what() as message.
class call_error : public std::runtime_error {
public:
  explicit call_error(const std::string& message, json details = {})
    : std::runtime_error(message), details_(std::move(details)) {}
  const json& details() const noexcept { return details_; }

private:
  json details_;
};

} // namespace mpreg
