// The only translation unit of the node that includes websocketpp's server.
#include "bridge/ws_server.hpp"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "transport/io_host.hpp"
#include "transport/ws_payload.hpp"
#include "util/log.hpp"

namespace mpreg::bridge {

namespace {

// Each connection carries its id, so a frame needs no map lookup, and the
// frames of the current read burst.
struct connection_data {
  std::uint64_t id = 0;
  std::vector<std::string> burst;
  // A socket read is pending (see read_frame below).
  bool read_armed = false;
};

// What the endpoint asks of its owner when an accept completes (see
// handle_accept below); set before listening, called on the loop thread.
struct endpoint_data {
  // True when the owner retries the accept later itself.
  std::function<bool(const std::error_code&)> accept_done;
};

struct server_config : websocketpp::config::asio {
  // One thread at a time runs the node's loop (io_host), so websocketpp's
  // per-connection strands only cost a mutex and a queue per handler.
  struct transport_config : websocketpp::config::asio::transport_config {
    static const bool enable_multithreading = false;
  };
  using transport_type = websocketpp::transport::asio::endpoint<transport_config>;
  using connection_base = connection_data;
  using endpoint_base = endpoint_data;
};

} // namespace
} // namespace mpreg::bridge

MPREG_WS_FAST_PAYLOAD(mpreg::bridge::server_config)

// Pausing a connection (outbound::pause_reading). websocketpp 0.8.2's
// pause_reading() only stops the *next* read; its resume_reading() always
// starts one, so a resume while the read issued before the pause is still
// pending would put two reads on one buffer. These two members, as in
// websocketpp except for `read_armed`, start a read on resume only when none
// is pending.
template <>
inline void websocketpp::connection<mpreg::bridge::server_config>::read_frame() {
  if (!m_read_flag) {
    this->read_armed = false; // the pending read completed: none now
    return;
  }
  this->read_armed = true;
  transport_con_type::async_read_at_least(1, m_buf,
                                          mpreg::bridge::server_config::connection_read_buffer_size,
                                          m_handle_read_frame);
}

template <>
inline void websocketpp::connection<mpreg::bridge::server_config>::handle_resume_reading() {
  m_read_flag = true;
  if (!this->read_armed)
    read_frame();
}

// Accepting again. websocketpp 0.8.2 restarts a failed accept at once; out
// of descriptors (EMFILE) that fails at once again, a busy loop at 100 % CPU
// until a descriptor frees up. This is its handle_accept except for the
// owner's say (endpoint_data::accept_done), which delays such retries.
template <>
inline void websocketpp::server<mpreg::bridge::server_config>::handle_accept(
  connection_ptr con, lib::error_code const& ec) {
  if (ec)
    con->terminate(ec);
  else
    con->start();
  if (this->accept_done && this->accept_done(ec))
    return;
  lib::error_code start_ec;
  start_accept(start_ec);
}

namespace mpreg::bridge {
namespace {

using server = websocketpp::server<server_config>;
using connection_ptr = server::connection_ptr;

// The closing handshake reads the client's close frame, so a paused
// connection reads again first (resuming one that is not paused does
// nothing). Loop thread.
void close_connection(const connection_ptr& con, std::uint16_t code, const std::string& reason) {
  if (con->get_state() == websocketpp::session::state::open)
    con->resume_reading();
  websocketpp::lib::error_code ec;
  con->close(code, reason, ec);
}

} // namespace

struct ws_server::impl : std::enable_shared_from_this<ws_server::impl> {
  // Declared first, destroyed last: the endpoint's sockets belong to its loop.
  std::shared_ptr<transport::io_host> host;
  server endpoint;
  server_events events;
  std::size_t max_message_size;
  std::size_t max_buffered; // slow-client limit per connection
  std::atomic<bool> running{false};
  // How stop() learns that the loop has closed everything.
  std::mutex stop_m;
  std::condition_variable stop_cv;
  std::size_t open_count = 0;   // guarded by stop_m (mirrors open.size())
  bool accept_ended = false;    // guarded by stop_m
  bool fenced = false;          // guarded by stop_m
  bool stopping = false;        // loop thread only: refuse handshakes that finish now
  // Touched on the I/O thread only.
  std::unordered_map<std::uint64_t, websocketpp::connection_hdl> open;
  std::uint64_t next_id = 1;
  // Connections with frames in `burst`, and whether a flush is queued.
  std::vector<connection_ptr> bursting;
  bool flush_queued = false;
  // Accepting with backoff while the process is out of descriptors (or
  // memory), as Go's net/http does: 5 ms doubling to 1 s, reset by a success.
  asio::steady_timer accept_retry;
  std::chrono::milliseconds accept_delay{0};
  std::uint64_t accept_failures = 0; // in a row

  // Hands every burst to the actors. Runs after the read handlers that
  // filled them (it is posted behind them), and before a close is reported.
  void flush() {
    flush_queued = false;
    for (auto& con : bursting) {
      auto frames = std::move(con->burst);
      con->burst.clear(); // moved-from: make it empty for the next burst
      if (events.on_frames)
        events.on_frames(con->id, std::move(frames));
    }
    bursting.clear();
  }

  impl(std::shared_ptr<transport::io_host> h, server_events ev, std::size_t max_size)
    : host(std::move(h)),
      events(std::move(ev)),
      max_message_size(max_size),
      max_buffered(transport::unread_limit(max_size)),
      accept_retry(host->io()) {}

  // An accept completed (endpoint_data::accept_done); true when the retry
  // is left to accept_retry.
  bool accept_done(const std::error_code& ec) {
    if (!ec) {
      if (accept_failures > 0)
        MPREG_LOG(info, "accepting connections again, after " << accept_failures
                                                             << " failed attempts");
      accept_failures = 0;
      accept_delay = std::chrono::milliseconds{0};
      return false;
    }
    // Asio's own system category: it does not compare equal to std::errc.
    int e = ec.value();
    bool shortage = ec.category() == asio::error::get_system_category() &&
                    (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM);
    if (!shortage)
      return false; // another client's failed handshake, say: accept at once
    if (accept_failures++ == 0)
      MPREG_LOG(warn, "cannot accept connections: " << ec.message()
                        << "; retrying with backoff up to 1 s (raise the open-file limit?)");
    accept_delay = std::min(std::max(2 * accept_delay, std::chrono::milliseconds{5}),
                            std::chrono::milliseconds{1000});
    accept_retry.expires_after(accept_delay);
    accept_retry.async_wait([weak = weak_from_this()](const asio::error_code& wait_ec) {
      auto self = weak.lock();
      if (wait_ec || !self)
        return; // cancelled by stop()
      websocketpp::lib::error_code start_ec; // not listening any more: nothing to do
      self->endpoint.start_accept(start_ec);
    });
    return true;
  }

  void count_open(std::size_t n) {
    {
      std::lock_guard<std::mutex> lock(stop_m);
      open_count = n;
    }
    stop_cv.notify_all();
  }

  // Loop thread: sets `flag` once every handler queued before this call has
  // run (asio runs its queue in order; a cancelled accept is queued at once).
  void fence(bool impl::*flag) {
    asio::post(host->io(), [self = shared_from_this(), flag] {
      {
        std::lock_guard<std::mutex> lock(self->stop_m);
        (*self).*flag = true;
      }
      self->stop_cv.notify_all();
    });
  }

  // Runs `fn` on the loop and waits (at most `limit`) until `done` holds.
  template <class Fn, class Pred>
  bool on_loop_until(Fn fn, Pred done, std::chrono::milliseconds limit) {
    if (!host->inbox().push(std::move(fn)))
      return false; // the loop has ended: nothing more will happen
    std::unique_lock<std::mutex> lock(stop_m);
    return stop_cv.wait_for(lock, limit, done);
  }
};

namespace {

class connection_outbound final : public outbound,
                                  public std::enable_shared_from_this<connection_outbound> {
public:
  connection_outbound(std::shared_ptr<ws_server::impl> owner, connection_ptr con,
                      std::string remote)
    : owner_(std::move(owner)), con_(std::move(con)), remote_(std::move(remote)) {}

  bool send(std::string text) override {
    if (closed_.load(std::memory_order_relaxed))
      return false;
    // Only the frames still on their way to the I/O thread are counted here:
    // what websocketpp holds may be read on the I/O thread alone (flush).
    if (over_limit(pending_bytes_.load(std::memory_order_relaxed)))
      return false;
    // The frame is built here, around the text itself: websocketpp would
    // copy it twice and validate its UTF-8 byte by byte. A server's frames
    // are never masked and this server negotiates no extensions.
    auto header = transport::text_frame_header(text.size());
    auto msg = transport::prepared_text(*con_, header, std::move(text));
    if (!msg)
      return false;
    return enqueue(std::move(msg));
  }

  void close(std::uint16_t code, const std::string& reason) override {
    if (closed_.exchange(true))
      return;
    // Pushed under the same lock as the frames' tasks: the task of every
    // frame handed over before this is ahead of it in the inbox.
    std::lock_guard<std::mutex> lock(pending_m_);
    owner_->host->inbox().push(
      [self = shared_from_this(), code, reason] { close_connection(self->con_, code, reason); });
  }

  void pause_reading(bool paused) override {
    if (closed_.load(std::memory_order_relaxed))
      return;
    std::lock_guard<std::mutex> lock(pending_m_); // ordered with frames and close
    owner_->host->inbox().push([self = shared_from_this(), paused] {
      if (self->con_->get_state() != websocketpp::session::state::open)
        return;
      if (paused)
        self->con_->pause_reading();
      else
        self->con_->resume_reading();
    });
  }

  const std::string& remote() const override { return remote_; }

private:
  // The I/O thread writes the frames; one inbox task per burst of them, not
  // per frame. The task holds only `this` (small enough for std::function to
  // store without allocating); `queued_self_` keeps the connection alive
  // until the task has run.
  bool enqueue(server::message_ptr msg) {
    std::lock_guard<std::mutex> lock(pending_m_);
    pending_bytes_.fetch_add(msg->get_raw_payload().size(), std::memory_order_relaxed);
    pending_.push_back(std::move(msg));
    if (pending_.size() > 1)
      return true; // the task for this burst is queued already
    queued_self_ = shared_from_this();
    if (owner_->host->inbox().push([this] { flush(); }))
      return true;
    pending_.clear(); // the server is stopping
    pending_bytes_.store(0, std::memory_order_relaxed);
    queued_self_.reset();
    return false;
  }

  // I/O thread; only the task enqueue pushed calls it, so `keep` is that
  // task's reference. The two vectors take turns, so neither allocates again.
  void flush() {
    std::shared_ptr<connection_outbound> keep;
    {
      std::lock_guard<std::mutex> lock(pending_m_);
      writing_.swap(pending_);
      keep.swap(queued_self_);
    }
    std::size_t bytes = 0;
    for (auto& msg : writing_) {
      bytes += msg->get_raw_payload().size();
      con_->send(msg);
    }
    pending_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    writing_.clear();
    // websocketpp's count of bytes not yet written to the socket; unlocked
    // in websocketpp, so read only here, on the thread that changes it.
    over_limit(con_->get_buffered_amount());
  } // `keep` may be the last reference: nothing touches `this` after it

  // A client that leaves more than the limit unread is closed: one slow
  // reader must not hold the node's memory.
  bool over_limit(std::size_t queued) {
    if (queued <= owner_->max_buffered)
      return false;
    if (!closed_.load(std::memory_order_relaxed)) // said once, not per late burst
      MPREG_LOG(warn, "closing " << remote_ << ": it reads too slowly (" << queued
                                 << " bytes queued)");
    close(websocketpp::close::status::policy_violation, "client reads too slowly");
    return true;
  }

  std::shared_ptr<ws_server::impl> owner_; // keeps the loop alive for con_
  connection_ptr con_;
  std::string remote_;
  std::mutex pending_m_;
  std::vector<server::message_ptr> pending_;       // guarded by pending_m_
  std::shared_ptr<connection_outbound> queued_self_; // guarded by pending_m_
  std::vector<server::message_ptr> writing_;       // I/O thread only
  std::atomic<std::size_t> pending_bytes_{0};      // payload bytes in pending_
  std::atomic<bool> closed_{false};
};

} // namespace

namespace {
// The live server and the connection behind a handle (nulls when either is gone).
std::pair<std::shared_ptr<ws_server::impl>, connection_ptr>
lookup(const std::weak_ptr<ws_server::impl>& weak, websocketpp::connection_hdl hdl) {
  auto self = weak.lock();
  if (!self)
    return {};
  websocketpp::lib::error_code ec;
  auto con = self->endpoint.get_con_from_hdl(hdl, ec);
  if (ec)
    return {};
  return {std::move(self), std::move(con)};
}
} // namespace

ws_server::ws_server(std::shared_ptr<transport::io_host> host, server_events events,
                     std::size_t max_message_size)
  : impl_(std::make_shared<impl>(std::move(host), std::move(events), max_message_size)) {
  auto& ep = impl_->endpoint;
  // websocketpp logs frames to stdout by default: stdout belongs to the tool.
  ep.clear_access_channels(websocketpp::log::alevel::all);
  ep.clear_error_channels(websocketpp::log::elevel::all);
  ep.init_asio(&impl_->host->io());
  ep.set_reuse_addr(true);
  ep.set_max_message_size(max_message_size);
  std::weak_ptr<impl> weak = impl_;
  ep.accept_done = [weak](const std::error_code& ec) {
    auto self = weak.lock();
    return self && self->accept_done(ec);
  };
  // Every handler is set before listen(): connections copy them at creation.
  ep.set_open_handler([weak](websocketpp::connection_hdl hdl) {
    auto [self, con] = lookup(weak, hdl);
    if (!con)
      return;
    if (self->stopping) { // its handshake ended after stop() began
      websocketpp::lib::error_code ec;
      con->close(websocketpp::close::status::going_away, "node stopping", ec);
      return;
    }
    // Small frames and latency matter: no Nagle delay. (The socket-init
    // handler runs before the socket is open, so it is set here.)
    asio::error_code nodelay_ec;
    con->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), nodelay_ec);
    con->id = self->next_id++;
    self->open.emplace(con->id, hdl);
    self->count_open(self->open.size());
    std::string remote = con->get_remote_endpoint();
    if (self->events.on_open)
      self->events.on_open(con->id, std::make_shared<connection_outbound>(self, con, remote));
  });
  ep.set_message_handler([weak](websocketpp::connection_hdl hdl, server::message_ptr msg) {
    auto [self, con] = lookup(weak, hdl);
    if (!con || con->id == 0)
      return;
    if (con->burst.empty())
      self->bursting.push_back(con);
    con->burst.push_back(std::move(msg->get_raw_payload()));
    if (!self->flush_queued) {
      self->flush_queued = true;
      asio::post(self->endpoint.get_io_service(), [weak = std::weak_ptr<impl>(self)] {
        if (auto s = weak.lock())
          s->flush();
      });
    }
  });
  // A close, or a failure; a failed handshake (a plain TCP probe, say) never
  // opened (id 0): nothing to report.
  auto closed = [weak](websocketpp::connection_hdl hdl) {
    auto [self, con] = lookup(weak, hdl);
    if (!con || con->id == 0)
      return;
    // A close for a frame one side could not take (over the limit, bad
    // UTF-8, a protocol error) is said, or a peer whose link keeps failing
    // is a mystery to the operator. (Either side may have started it:
    // websocketpp's acknowledgement repeats the other side's code.)
    namespace status = websocketpp::close::status;
    auto code = con->get_local_close_code();
    if (code == status::message_too_big || code == status::invalid_payload ||
        code == status::protocol_error)
      MPREG_LOG(warn, "connection of " << con->get_remote_endpoint() << " closed: "
                                       << con->get_local_close_reason() << " (" << code << ")");
    self->flush(); // frames that came before the close go first
    self->open.erase(con->id);
    self->count_open(self->open.size());
    if (self->events.on_close)
      self->events.on_close(con->id);
  };
  ep.set_close_handler(closed);
  ep.set_fail_handler(closed);
  ep.set_http_handler([weak](websocketpp::connection_hdl hdl) {
    auto [self, con] = lookup(weak, hdl);
    if (!con)
      return;
    const std::string& method = con->get_request().get_method();
    const bool head = method == "HEAD";
    std::pair<int, std::string> answer{404, "not found\n"};
    if (method != "GET" && !head) {
      answer = {405, "method not allowed: GET or HEAD\n"};
      con->append_header("Allow", "GET, HEAD");
    } else if (self->events.on_http) {
      const std::string& resource = con->get_resource();
      answer = self->events.on_http(resource.substr(0, resource.find_first_of("?#")));
    }
    con->set_status(static_cast<websocketpp::http::status_code::value>(answer.first));
    con->set_body(head ? std::string() : answer.second);
    con->append_header("Content-Type", answer.second.rfind("{", 0) == 0 ? "application/json"
                                                                          : "text/plain");
  });
}

ws_server::~ws_server() {
  stop();
}

std::uint16_t ws_server::listen(const std::string& host, std::uint16_t port) {
  auto& ep = impl_->endpoint;
  websocketpp::lib::error_code ec;
  ep.listen(host, std::to_string(port), ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                             ec.message());
  ep.start_accept(ec);
  if (ec)
    throw std::runtime_error("cannot accept on " + host + ":" + std::to_string(port) + ": " +
                             ec.message());
  auto local = ep.get_local_endpoint(ec);
  if (ec)
    throw std::runtime_error("cannot read the bound port: " + ec.message());
  impl_->running = true;
  return local.port();
}

void ws_server::stop(std::chrono::milliseconds grace) {
  if (!impl_->running.exchange(false))
    return;
  auto self = impl_;
  // The waits below need the loop running elsewhere: an actor on the thread
  // that hosts it moves it to a thread of its own first.
  if (self->host->on_loop_thread())
    self->host->to_own_thread();
  // Stop accepting and close every connection; answers already handed over
  // are ahead of this in the inbox, so they go out before the close frames.
  bool closed = self->on_loop_until(
    [self] {
      self->stopping = true;
      websocketpp::lib::error_code ec;
      self->endpoint.stop_listening(ec);
      self->accept_retry.cancel();
      self->fence(&impl::accept_ended); // behind the cancelled accept (or retry)
      for (auto& [id, hdl] : self->open) {
        auto con = self->endpoint.get_con_from_hdl(hdl, ec);
        if (!ec)
          close_connection(con, websocketpp::close::status::going_away, "node stopping");
      }
    },
    [&] { return self->open_count == 0 && self->accept_ended; }, grace);
  if (!closed && self->host->running()) {
    MPREG_LOG(warn, "websocket connections did not close within " << grace.count()
                                                                  << " ms; dropping them");
    self->on_loop_until(
      [self] {
        websocketpp::lib::error_code ec;
        std::vector<connection_ptr> rest;
        for (auto& [id, hdl] : self->open)
          if (auto con = self->endpoint.get_con_from_hdl(hdl, ec))
            rest.push_back(con);
        for (auto& con : rest)
          con->terminate(ec); // reports the close (on_close) now
      },
      [&] { return self->open_count == 0; }, std::chrono::seconds(1));
  }
  // What the closes left queued has run once this has: no handler of the
  // endpoint's own (accept) is pending after it. Connections still open
  // (a handshake refused above, one dropped late) hold what they use.
  self->on_loop_until([self] { self->fence(&impl::fenced); }, [&] { return self->fenced; },
                      std::chrono::seconds(1));
}

} // namespace mpreg::bridge
