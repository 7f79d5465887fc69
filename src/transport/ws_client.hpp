// The WebSocket client transport: one endpoint (one I/O thread) from which
// many outgoing connections are opened. Used by mpreg::client and by the
// node's peer links. No websocketpp type appears here: the only translation
// unit that includes websocketpp for the client side is ws_client.cpp.
//
// Threading: every callback (on_open, on_message, on_close, timers, posted
// functions) runs on the endpoint's own I/O thread, one at a time. Do not
// block in them. ws_connection::send/close and everything on
// ws_client_endpoint may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace mpreg::transport {

class io_host;

/// What a connection reports. Set what you need; unset handlers are skipped.
struct ws_handlers {
  /// The WebSocket handshake completed; send() works from now on.
  std::function<void()> on_open;
  /// One whole frame (text or binary), moved out of the transport's buffer.
  std::function<void(std::string&& frame)> on_message;
  /// Called exactly once per connect(): the connection failed to open (refused,
  /// connect timeout, bad URL, handshake rejected) or an open connection
  /// ended (either side closed it, the network failed, the endpoint was
  /// destroyed). `reason` is a human-readable explanation.
  std::function<void(std::string reason)> on_close;
};

struct ws_client_options {
  /// Frames larger than this are refused (the connection is closed with 1009).
  std::size_t max_message_size = 64u * 1024u * 1024u;
  /// How long a close handshake may take before the socket is dropped.
  std::chrono::milliseconds close_handshake_timeout{1000};
  /// How long an I/O thread of the endpoint's own polls before it sleeps
  /// (see run_io); 0: never.
  std::chrono::microseconds io_spin{0};
};

/// A handle to one connection. Thread-safe. Dropping the handle does not
/// close the connection (the endpoint keeps it until it ends): call close().
class ws_connection {
public:
  struct state;
  explicit ws_connection(std::shared_ptr<state> s) : s_(std::move(s)) {}

  /// Queues one text frame for the endpoint thread. `frame` must be valid
  /// UTF-8 (JSON written by mpreg::json is): it is sent as it is, and a peer
  /// closes the connection (1007) on bad text. Returns false when the
  /// connection is not open (still connecting, closing or closed); nothing
  /// is queued then. A frame queued as the connection ends is dropped, and
  /// on_close reports the end.
  bool send(std::string frame);
  /// Starts a normal close (code 1000), or abandons a connection still
  /// connecting. on_close follows on the endpoint thread. Idempotent.
  void close(std::string reason = "closed by client");
  /// True between on_open and the start of the close.
  bool is_open() const;
  /// The URL this connection was opened to.
  const std::string& url() const;
  /// The address the connection reached, "IP:port" ("[IPv6]:port"), once it
  /// is open (empty before): two URLs that reach one listener give the same.
  std::string remote_endpoint() const;

private:
  std::shared_ptr<state> s_;
};

using ws_connection_ptr = std::shared_ptr<ws_connection>;

/// A cancellable timer made by ws_client_endpoint::run_after.
class ws_timer {
public:
  virtual ~ws_timer() = default;
  /// The function will not run after this returns (unless it is running
  /// right now on the endpoint thread). Idempotent, any thread.
  virtual void cancel() = 0;
};

using ws_timer_ptr = std::shared_ptr<ws_timer>;

/// The endpoint: every connection opened from it, on an I/O loop of its own
/// (a thread) or on `host`, a loop it shares (a node's).
class ws_client_endpoint {
public:
  explicit ws_client_endpoint(ws_client_options options = {},
                              std::shared_ptr<io_host> host = nullptr);
  /// shutdown(), then ends the loop (a shared one too: it must outlive
  /// every other user of that loop) and reports what is left. Every
  /// connection gets its on_close.
  ~ws_client_endpoint();
  ws_client_endpoint(const ws_client_endpoint&) = delete;
  ws_client_endpoint& operator=(const ws_client_endpoint&) = delete;

  /// Opens a connection to a ws:// URL. Returns at once; the outcome arrives
  /// through the handlers (on_open, or on_close when it fails, including
  /// when it is not open within connect_timeout).
  ws_connection_ptr connect(const std::string& url, ws_handlers handlers,
                            std::chrono::milliseconds connect_timeout = std::chrono::seconds(5));

  /// Closes every connection and refuses new ones; the loop keeps running.
  /// Bounded: waits at most about close_handshake_timeout + 1 s. Idempotent.
  void shutdown();

  /// Runs fn on the endpoint thread.
  void post(std::function<void()> fn);
  /// Runs fn on the endpoint thread after `delay`, unless cancelled first.
  ws_timer_ptr run_after(std::chrono::milliseconds delay, std::function<void()> fn);
  /// True when called from the endpoint's own I/O thread.
  bool on_endpoint_thread() const;

  struct core;

private:
  std::shared_ptr<core> core_;
};

} // namespace mpreg::transport
