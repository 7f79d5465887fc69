// mpreg::client: calls functions on an MPREG cluster over one WebSocket.
//
//   mpreg::client c("ws://127.0.0.1:6666");
//   c.connect();
//   mpreg::json v = c.call("echo", {"hi there!"});             // "hi there!"
//   auto f = c.request({{"|a", "echo", {"x"}, {}, {}}, {"|b", "echos", {"|a", 2}, {}, {}}});
//   mpreg::json r = f.get();                                  // {"|b": ["x", 2]}
//
// Any number of requests may be in flight at once, from any number of
// threads; answers are matched to requests by their `u`. Failures are typed
// exceptions (rpc_exception, timeout_error, connection_error), thrown by
// call() and by the futures' get().
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "mpreg/error.hpp"
#include "mpreg/json.hpp"
#include "mpreg/messages.hpp"

namespace mpreg {

/// Base of every error the client reports: a code, a message and details.
class client_error : public std::runtime_error {
public:
  client_error(int code, const std::string& message, json details = {})
    : std::runtime_error(message), code_(code), details_(std::move(details)) {}
  /// A PROTOCOL.md error code (1000-1009), or 0 for a connection error.
  int code() const noexcept { return code_; }
  /// The human-readable message (same as what()).
  std::string message() const { return what(); }
  /// Structured details (null when there are none).
  const json& details() const noexcept { return details_; }

private:
  int code_;
  json details_;
};

/// The node answered the request with an error (`code()` is the node's
/// code, e.g. 1001 unknown function, 1003 the function failed), except a
/// passed deadline (1007), which is a timeout_error.
class rpc_exception : public client_error {
public:
  explicit rpc_exception(const rpc_error& e) : client_error(e.code, e.message, e.details) {}
  /// The error object as the node sent it.
  rpc_error error() const { return rpc_error(code(), message(), details()); }
};

/// The request's deadline passed (`code()` is 1007), whoever noticed first:
/// the node, which stopped the work and answered 1007 (its message and
/// details, e.g. the unfinished commands, are kept here), or the client,
/// which got no answer in time (nothing is sent to the node then; a late
/// answer is ignored). Catch this one type for every timeout.
class timeout_error : public client_error {
public:
  explicit timeout_error(const std::string& message, json details = {})
    : client_error(static_cast<int>(error_code::deadline_exceeded), message,
                   std::move(details)) {}
};

/// The connection could not be opened, was lost, or the client is not
/// connected (`code()` is 0). Every request pending on a lost connection
/// fails with it at once.
class connection_error : public client_error {
public:
  explicit connection_error(const std::string& message, json details = {})
    : client_error(0, message, std::move(details)) {}
};

/// Settings of a client.
struct client_options {
  /// How long connect() (and each reconnect attempt) may take.
  std::chrono::milliseconds connect_timeout{5000};
  /// Deadline of a request, in seconds, when request_options gives none.
  /// 0 or less: no deadline.
  double default_timeout = 30.0;
  /// When the node was told the deadline (see request_options::send_timeout),
  /// the client waits this many seconds longer so the node's own answer
  /// (error 1007) can arrive first.
  double timeout_grace = 0.5;
  /// Reconnect automatically after a connection that connect() opened is
  /// lost, with jittered exponential backoff, until close(). Requests made
  /// while disconnected fail at once with connection_error.
  bool reconnect = false;
  /// First reconnect delay; doubled after each failed attempt.
  std::chrono::milliseconds initial_backoff{100};
  /// Largest reconnect delay.
  std::chrono::milliseconds max_backoff{10000};
  /// Largest frame accepted from the node, in bytes.
  std::size_t max_message_size = 64u * 1024u * 1024u;
};

/// Per-request settings.
struct request_options {
  /// Deadline in seconds; unset: client_options::default_timeout;
  /// 0 or less: no deadline.
  std::optional<double> timeout;
  /// Send the deadline to the node as the request's `timeout` field, so the
  /// node stops the work and answers 1007 itself.
  bool send_timeout = true;
};

/// The outcome of an asynchronous request: `r` or an error.
struct rpc_result {
  json r;                    ///< the response's r (when ok())
  std::exception_ptr error;  ///< a client_error subclass (when !ok())

  /// True when the request succeeded.
  bool ok() const noexcept { return !error; }
  /// r, or throws the error.
  const json& get() const {
    if (error)
      std::rethrow_exception(error);
    return r;
  }
};

/// A connection to one MPREG node. Thread-safe: every member may be called
/// from any thread. Each client owns one I/O thread. Callbacks run on it:
/// keep them short, and never destroy the client from inside one. A
/// moved-from client may only be destroyed or assigned to.
class client {
public:
  /// Called with the outcome of request_async / request_raw_async.
  using callback = std::function<void(rpc_result)>;

  /// Does not connect: call connect().
  explicit client(std::string url, client_options options = {});
  /// Closes the connection; pending requests fail with connection_error.
  ~client();
  client(client&&) noexcept;
  client& operator=(client&&) noexcept;
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Opens the connection (no-op when open). Blocks until the handshake is
  /// done; throws connection_error on failure or after connect_timeout.
  void connect();
  /// Closes the connection and stops reconnecting; pending requests fail
  /// with connection_error. connect() may be called again later.
  void close();
  /// True while the connection is open.
  bool connected() const;
  /// Waits until the connection is open (e.g. after an automatic
  /// reconnect); false when it is not open within `timeout`.
  bool wait_connected(std::chrono::milliseconds timeout) const;
  /// The URL given to the constructor.
  const std::string& url() const;
  /// Number of requests awaiting an answer.
  std::size_t pending() const;

  /// Sends a request (a fresh `u` is chosen) and returns a future of its `r`
  /// (an object mapping every sink command to its result). get() throws
  /// rpc_exception, timeout_error or connection_error.
  std::future<json> request(std::vector<command> cmds, request_options options = {});
  /// Same as request(); `done` gets the outcome on the I/O thread (or on
  /// the calling thread when the request fails before it is sent).
  void request_async(std::vector<command> cmds, callback done, request_options options = {});

  /// Sends a hand-built message (any role: "rpc", "server" STATUS, ...) and
  /// returns a future of the answer's `r`. A string `u` is added when
  /// missing; throws std::invalid_argument when `message` is not an object,
  /// or its `u` is not a string or is already in flight. The deadline is options.timeout, else
  /// the message's own `timeout`, else the default; the message is sent
  /// unchanged otherwise.
  std::future<json> request_raw(json message, request_options options = {});
  /// Callback form of request_raw.
  void request_raw_async(json message, callback done, request_options options = {});

  /// The node's view of the cluster (members, URLs, functions, resources,
  /// last seen, link state): the `status` field of its STATUS answer.
  /// Against a node without that extension it returns r ("STATUS").
  json cluster_status(std::optional<double> timeout = {});

  /// Calls one function and returns its value, like MPREG's
  /// `call(fun, *args, locs=..., **kwargs)`. Throws like request().get().
  json call(const std::string& fun, json::array args = {}, json::object kwargs = {},
            std::vector<std::string> locs = {}, std::optional<double> timeout = {});

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace mpreg
