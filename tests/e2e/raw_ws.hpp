// Test helpers for talking to a node at the protocol level: a raw WebSocket
// connection (frames in, frames out, nothing encoded for you), request text
// built by hand from PROTOCOL.md, and a plain HTTP GET.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mpreg/json.hpp"
#include "transport/ws_client.hpp"

namespace mpreg::test {

using namespace std::chrono_literals;

/// One WebSocket connection that records every frame the node sends.
class raw_conn {
public:
  raw_conn(transport::ws_client_endpoint& ep, const std::string& url,
           std::chrono::milliseconds open_limit = 5000ms)
    : st_(std::make_shared<state>()) {
    transport::ws_handlers h;
    auto st = st_;
    h.on_open = [st] {
      std::lock_guard<std::mutex> l(st->m);
      st->open = true;
      st->cv.notify_all();
    };
    h.on_message = [st](std::string&& frame) {
      json j = parse(frame); // parsed once, on the transport's thread
      std::lock_guard<std::mutex> l(st->m);
      if (const json* fu = j.find("u"); fu && fu->is_string())
        st->by_u.emplace(fu->as_string(), st->frames.size());
      st->frames.push_back(std::move(j));
      st->cv.notify_all();
    };
    h.on_close = [st](std::string reason) {
      std::lock_guard<std::mutex> l(st->m);
      st->closed = true;
      st->reason = std::move(reason);
      st->cv.notify_all();
    };
    conn_ = ep.connect(url, std::move(h), open_limit);
    std::unique_lock<std::mutex> l(st_->m);
    st_->cv.wait_for(l, open_limit + 1000ms, [&] { return st_->open || st_->closed; });
    if (!st_->open)
      throw std::runtime_error("cannot open " + url + ": " + st_->reason);
  }
  ~raw_conn() { close(); }
  raw_conn(const raw_conn&) = delete;
  raw_conn& operator=(const raw_conn&) = delete;

  bool send(std::string frame) { return conn_->send(std::move(frame)); }
  void close() { conn_->close(); }

  /// The first frame whose "u" equals `u` (parsed); null JSON on timeout.
  /// Frames are kept: the same answer can be read again.
  json wait_u(const std::string& u, std::chrono::milliseconds limit = 10000ms) {
    std::unique_lock<std::mutex> l(st_->m);
    if (!st_->cv.wait_for(l, limit, [&] { return st_->by_u.count(u) > 0; }))
      return json{};
    return st_->frames[st_->by_u.find(u)->second];
  }

  /// Waits until at least `n` frames arrived; false on timeout.
  bool wait_frames(std::size_t n, std::chrono::milliseconds limit = 10000ms) {
    std::unique_lock<std::mutex> l(st_->m);
    return st_->cv.wait_for(l, limit, [&] { return st_->frames.size() >= n; });
  }

  /// Every frame so far, parsed.
  std::vector<json> frames() const {
    std::lock_guard<std::mutex> l(st_->m);
    return st_->frames;
  }

  std::size_t frame_count() const {
    std::lock_guard<std::mutex> l(st_->m);
    return st_->frames.size();
  }

  /// How many frames carry this u.
  std::size_t count_u(const std::string& u) const {
    std::lock_guard<std::mutex> l(st_->m);
    return st_->by_u.count(u);
  }

  /// Waits for the connection to end; true when it did.
  bool wait_closed(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> l(st_->m);
    return st_->cv.wait_for(l, limit, [&] { return st_->closed; });
  }
  bool closed() const {
    std::lock_guard<std::mutex> l(st_->m);
    return st_->closed;
  }
  std::string close_reason() const {
    std::lock_guard<std::mutex> l(st_->m);
    return st_->reason;
  }

  /// Parses frame text; a frame that is not JSON becomes {"unparsable": text}.
  static json parse(const std::string& text) {
    try {
      return json::parse(text);
    } catch (const json_error&) {
      return json::make_object({{"unparsable", text}});
    }
  }

private:
  struct state {
    mutable std::mutex m;
    std::condition_variable cv;
    bool open = false;
    bool closed = false;
    std::string reason;
    std::vector<json> frames;                  // every frame, parsed, in order
    std::multimap<std::string, std::size_t> by_u; // u -> index in frames
  };
  std::shared_ptr<state> st_;
  transport::ws_connection_ptr conn_;
};

/// Quotes a string as JSON.
inline std::string q(const std::string& s) {
  return json(s).dump();
}

/// A command object as text: {"name":..,"fun":..,"args":ARGS[,"kwargs":KW][,"locs":LOCS]}.
inline std::string cmd(const std::string& name, const std::string& fun,
                       const std::string& args = "[]", const std::string& kwargs = "",
                       const std::string& locs = "") {
  std::string s = "{\"name\":" + q(name) + ",\"fun\":" + q(fun) + ",\"args\":" + args;
  if (!kwargs.empty())
    s += ",\"kwargs\":" + kwargs;
  if (!locs.empty())
    s += ",\"locs\":" + locs;
  return s + "}";
}

/// A request frame: {"role":"rpc","u":U,"cmds":[CMDS...]} plus `extra` members.
inline std::string rpc(const std::string& u, const std::vector<std::string>& cmds,
                       const std::string& extra = "") {
  std::string s = "{\"role\":\"rpc\",\"u\":" + q(u) + ",\"cmds\":[";
  for (std::size_t i = 0; i < cmds.size(); ++i)
    s += (i ? "," : "") + cmds[i];
  s += "]";
  if (!extra.empty())
    s += "," + extra;
  return s + "}";
}

/// A blocking TCP connection to 127.0.0.1:port: its descriptor, or -1 when
/// the socket or the connect failed (the caller closes it).
inline int tcp_connect_local(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// A plain HTTP/1.1 request (GET unless told) on 127.0.0.1:port; returns
/// {status, body} ({0, why} on failure).
inline std::pair<int, std::string> http_get(int port, const std::string& path,
                                            std::chrono::milliseconds limit = 5000ms,
                                            const std::string& method = "GET") {
  int fd = tcp_connect_local(port);
  if (fd < 0)
    return {0, "connect failed"};
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                    std::to_string(port) + "\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return {0, "send failed"};
  }
  std::string resp;
  auto end = std::chrono::steady_clock::now() + limit;
  char buf[8192];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  end - std::chrono::steady_clock::now())
                  .count();
    if (left <= 0)
      break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0)
      break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
    resp.append(buf, static_cast<std::size_t>(n));
    // Stop once the whole body (by Content-Length) is in.
    auto head_end = resp.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      auto cl = resp.find("Content-Length: ");
      if (cl != std::string::npos && cl < head_end) {
        auto len = std::stoul(resp.substr(cl + 16));
        if (resp.size() >= head_end + 4 + len)
          break;
      }
    }
  }
  ::close(fd);
  if (resp.rfind("HTTP/1.1 ", 0) != 0)
    return {0, "no HTTP answer: " + resp};
  int status = std::atoi(resp.c_str() + 9);
  auto head_end = resp.find("\r\n\r\n");
  return {status, head_end == std::string::npos ? std::string{} : resp.substr(head_end + 4)};
}

/// A WebSocket client written straight on a TCP socket, for what the
/// transport cannot do: binary and fragmented frames, and a client that
/// stops reading. Blocking, one thread.
class tcp_ws {
public:
  explicit tcp_ws(int port) {
    fd_ = tcp_connect_local(port);
    if (fd_ < 0)
      throw std::runtime_error("connect failed");
    std::string hs = "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                     "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    write_all(hs);
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
      char ch;
      if (!read_exact(&ch, 1, 5000ms))
        throw std::runtime_error("no handshake answer");
      head += ch;
    }
    if (head.rfind("HTTP/1.1 101", 0) != 0)
      throw std::runtime_error("handshake refused: " + head);
  }
  ~tcp_ws() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  tcp_ws(const tcp_ws&) = delete;
  tcp_ws& operator=(const tcp_ws&) = delete;

  enum opcode : unsigned char { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

  /// Sends one (masked) frame; false when the socket is gone.
  bool send_frame(unsigned char op, const std::string& payload, bool fin = true) {
    std::string f;
    f += static_cast<char>((fin ? 0x80 : 0) | op);
    auto n = payload.size();
    if (n < 126) {
      f += static_cast<char>(0x80 | n);
    } else if (n < 65536) {
      f += static_cast<char>(0x80 | 126);
      f += static_cast<char>(n >> 8);
      f += static_cast<char>(n & 0xff);
    } else {
      f += static_cast<char>(0x80 | 127);
      for (int i = 7; i >= 0; --i)
        f += static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * i)) & 0xff);
    }
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    for (auto m : mask)
      f += static_cast<char>(m);
    for (std::size_t i = 0; i < n; ++i)
      f += static_cast<char>(static_cast<unsigned char>(payload[i]) ^ mask[i % 4]);
    return write_all(f);
  }

  struct frame {
    unsigned char op = 0;
    std::string payload;
  };

  /// Reads the next whole message (continuations joined, pings answered);
  /// nullopt-like: op 0xff on timeout or a closed socket.
  frame read_message(std::chrono::milliseconds limit = 10000ms) {
    auto end = std::chrono::steady_clock::now() + limit;
    frame msg;
    msg.op = 0xff;
    std::string data;
    unsigned char first_op = 0;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
      unsigned char h[2];
      if (left.count() <= 0 || !read_exact(reinterpret_cast<char*>(h), 2, left))
        return msg;
      bool fin = h[0] & 0x80;
      unsigned char op = h[0] & 0x0f;
      std::uint64_t n = h[1] & 0x7f;
      if (n == 126 || n == 127) {
        unsigned char ext[8];
        int len = n == 126 ? 2 : 8;
        if (!read_exact(reinterpret_cast<char*>(ext), static_cast<std::size_t>(len), left))
          return msg;
        n = 0;
        for (int i = 0; i < len; ++i)
          n = (n << 8) | ext[i];
      }
      std::string p(static_cast<std::size_t>(n), '\0');
      if (n > 0 && !read_exact(p.data(), p.size(), left))
        return msg;
      if (op == ping) {
        send_frame(pong, p);
        continue;
      }
      if (op == close) {
        msg.op = close;
        msg.payload = p;
        return msg;
      }
      if (op != continuation)
        first_op = op;
      data += p;
      if (fin) {
        msg.op = first_op;
        msg.payload = std::move(data);
        return msg;
      }
    }
  }

  /// The close code of a close frame's payload (0 when it has none).
  static int close_code(const frame& f) {
    if (f.op != close || f.payload.size() < 2)
      return 0;
    return (static_cast<unsigned char>(f.payload[0]) << 8) | static_cast<unsigned char>(f.payload[1]);
  }

  /// True once the peer closed the TCP connection (reads EOF, discarding data).
  bool drain_until_eof(std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    char buf[65536];
    for (;;) {
      ssize_t n = recv_before(end, buf, sizeof buf);
      if (n == timed_out)
        return false;
      if (n <= 0)
        return true;
    }
  }

private:
  bool write_all(const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }
  bool read_exact(char* out, std::size_t n, std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    std::size_t got = 0;
    while (got < n) {
      ssize_t r = recv_before(end, out + got, n - got);
      if (r <= 0) // timed out, closed or failed
        return false;
      got += static_cast<std::size_t>(r);
    }
    return true;
  }
  static constexpr ssize_t timed_out = -2;
  // One recv once data is there, waiting at most until `end`: what recv
  // returned, or timed_out.
  ssize_t recv_before(std::chrono::steady_clock::time_point end, char* out, std::size_t n) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    end - std::chrono::steady_clock::now())
                    .count();
      if (left <= 0)
        return timed_out;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) > 0)
        return ::recv(fd_, out, n, 0);
    }
  }
  int fd_ = -1;
};

/// Polls pred until it holds or `limit` passes.
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = 5000ms,
                std::chrono::milliseconds step = 10ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end)
      return false;
    std::this_thread::sleep_for(step);
  }
  return true;
}

} // namespace mpreg::test
