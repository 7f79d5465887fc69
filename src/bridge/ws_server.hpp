// The WebSocket listener: websocketpp over standalone Asio on the node's I/O
// loop (transport/io_host.hpp), behind an interface free of websocketpp types
// (it is slow to compile and nobody else should touch the sockets).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mpreg::transport {
class io_host;
}

namespace mpreg::bridge {

/// The sending side of one client connection. Thread-safe: sessions and jobs
/// on CAF worker threads write through it.
class outbound {
public:
  virtual ~outbound() = default;
  /// Queues a text frame (valid UTF-8, as every encoder of ours writes);
  /// false when this side has closed the connection or the server is
  /// stopping, or when the peer reads so slowly that its queue is over the
  /// limit (the connection is then closed: one slow client never holds the
  /// node's memory). A frame queued as the peer goes away is dropped; the
  /// close is reported through server_events.
  virtual bool send(std::string text) = 0;
  /// Closes the connection with a WebSocket close code and reason.
  virtual void close(std::uint16_t code, const std::string& reason) = 0;
  /// Stops (true) or resumes (false) reading the connection's socket:
  /// backpressure, TCP's own flow control then holds the client back.
  /// Frames already read still arrive. Ordered with send() and close().
  virtual void pause_reading(bool paused) = 0;
  /// The peer's address, for logs ("127.0.0.1:51234").
  virtual const std::string& remote() const = 0;
};

/// What the server reports. Every callback runs on the loop's thread and
/// must not block.
struct server_events {
  std::function<void(std::uint64_t id, std::shared_ptr<outbound> out)> on_open;
  /// The frames that arrived together on a connection (one read from the
  /// socket), in order: one hand-over to the actors per burst, not per frame.
  std::function<void(std::uint64_t id, std::vector<std::string>&& frames)> on_frames;
  std::function<void(std::uint64_t id)> on_close;
  /// Plain HTTP GET on the same port: returns {status, body} for a path
  /// (query string removed). Other methods get 405 without asking; HEAD is
  /// answered like GET, without the body.
  std::function<std::pair<int, std::string>(const std::string& path)> on_http;
};

class ws_server {
public:
  /// Serves on `host`'s loop, which its owner starts and stops (and must
  /// not stop before this server has stopped). `max_message_size`: larger
  /// frames close the connection (code 1009).
  ws_server(std::shared_ptr<transport::io_host> host, server_events events,
            std::size_t max_message_size);
  ~ws_server();
  ws_server(const ws_server&) = delete;
  ws_server& operator=(const ws_server&) = delete;

  /// Binds host:port (0 picks a free port), starts accepting and returns the
  /// bound port. Throws std::runtime_error when it cannot bind.
  std::uint16_t listen(const std::string& host, std::uint16_t port);

  /// Stops accepting and closes every connection (code 1001, going away);
  /// bounded: drops what is still open after `grace`. Afterwards nothing of
  /// the loop touches this server. Any thread, the loop's own included (an
  /// actor on the worker hosting it: the loop moves to a thread first).
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds{2000});

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace mpreg::bridge
