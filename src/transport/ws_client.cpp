// The one client-side websocketpp translation unit (see ws_client.hpp).
#include "transport/ws_client.hpp"
#include "transport/io_host.hpp"
#include "transport/ws_payload.hpp"

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <map>
#include <unordered_set>
#include <mutex>
#include <random>
#include <sstream>
#include <utility>

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>

namespace mpreg::transport {

namespace {

// The stock asio client config, with the compile-time TCP connect and DNS
// caps raised: connect() enforces the caller's own timeout with a timer, and
// websocketpp's caps only bound how long an abandoned attempt lingers. One
// thread at a time runs the loop (io_host), so no strands: they only cost a
// mutex and a queue per handler.
struct client_config : websocketpp::config::asio_client {
  struct transport_config : websocketpp::config::asio_client::transport_config {
    static const long timeout_dns_resolve = 30000;
    static const long timeout_connect = 30000;
    static const bool enable_multithreading = false;
  };
  using transport_type = websocketpp::transport::asio::endpoint<transport_config>;
};

} // namespace
} // namespace mpreg::transport

MPREG_WS_FAST_PAYLOAD(mpreg::transport::client_config)

namespace mpreg::transport {
namespace {

using ws_endpoint = websocketpp::client<client_config>;
using message_ptr = ws_endpoint::message_ptr;
namespace close_status = websocketpp::close::status;

// User callbacks must not take the I/O thread down.
template <class F, class... A>
void guarded(F& f, A&&... args) noexcept {
  if (!f)
    return;
  try {
    f(std::forward<A>(args)...);
  } catch (...) {
  }
}

class asio_timer;

} // namespace

struct ws_client_endpoint::core {
  core(ws_client_options o, std::shared_ptr<io_host> h)
    : opts(o), host(std::move(h)), own_host(!host) {
    if (own_host)
      host = std::make_shared<io_host>("mpreg.wsclient", opts.io_spin);
  }

  ws_client_options opts;
  // Declared before ep, destroyed after it: ep's sockets belong to its loop.
  // Sends and closes from other threads go through its inbox (io_inbox.hpp).
  std::shared_ptr<io_host> host;
  bool own_host;
  ws_endpoint ep;

  std::mutex m;
  std::condition_variable cv;
  bool stopping = false;
  std::uint64_t next_id = 1;
  // Connections whose on_close has not been reported yet.
  std::map<std::uint64_t, std::shared_ptr<ws_connection::state>> live;
  // Every timer that still owns an asio timer (see asio_timer).
  std::mutex timers_m;
  std::unordered_set<asio_timer*> timers;

  asio::io_service& io() { return host->io(); }

  void start(const std::shared_ptr<ws_connection::state>& st, std::chrono::milliseconds timeout);
  void report(const std::shared_ptr<ws_connection::state>& st, const std::string& reason);
  void abandon(const std::shared_ptr<ws_connection::state>& st, const std::string& reason);
  void shutdown_connections();
};

struct ws_connection::state {
  std::weak_ptr<ws_client_endpoint::core> core;
  std::string url;
  std::uint64_t id = 0;

  enum class phase { connecting, open, closing, closed };
  mutable std::mutex m; // guards ph, hdl and remote
  phase ph = phase::connecting;
  websocketpp::connection_hdl hdl;
  std::string remote; // "IP:port" of the open socket's peer

  // Endpoint thread only.
  ws_handlers handlers;
  bool reported = false;  // on_close delivered
  bool abandoned = false; // given up before it opened; close it if it opens
  std::string gave_up;    // why we closed it ourselves, when we did (kept for on_close:
                          // websocketpp replaces its local reason when the close times out)
  std::unique_ptr<asio::steady_timer> connect_timer;

  void set_phase(phase p) {
    std::lock_guard<std::mutex> lock(m);
    ph = p;
  }
};

// ---- core (endpoint thread unless noted) ----

void ws_client_endpoint::core::report(const std::shared_ptr<ws_connection::state>& st,
                                      const std::string& reason) {
  if (st->reported)
    return;
  st->reported = true;
  st->set_phase(ws_connection::state::phase::closed);
  // Destroyed here, while the io_service exists: the state itself may be
  // kept by a user's handle long after the endpoint is gone.
  st->connect_timer.reset();
  auto on_close = std::move(st->handlers.on_close);
  st->handlers = {}; // drop user captures: they may hold this connection's handle
  {
    std::lock_guard<std::mutex> lock(m);
    live.erase(st->id);
  }
  cv.notify_all();
  guarded(on_close, reason);
}

void ws_client_endpoint::core::abandon(const std::shared_ptr<ws_connection::state>& st,
                                       const std::string& reason) {
  st->abandoned = true;
  // Report first: terminating may run the fail handler synchronously, and
  // the caller's reason is the one the user should see.
  report(st, reason);
  websocketpp::connection_hdl hdl;
  {
    std::lock_guard<std::mutex> lock(st->m);
    hdl = st->hdl;
  }
  // An attempt that is half-way through the WebSocket handshake is dropped
  // at once; one still in TCP connect ends by websocketpp's own cap.
  websocketpp::lib::error_code ec;
  if (auto con = ep.get_con_from_hdl(hdl, ec)) {
    if (con->get_state() == websocketpp::session::state::open)
      con->close(close_status::normal, reason, ec);
    else
      con->terminate(websocketpp::lib::error_code());
  }
}

void ws_client_endpoint::core::start(const std::shared_ptr<ws_connection::state>& st,
                                     std::chrono::milliseconds timeout) {
  if (st->reported)
    return;
  if (st->abandoned) {
    report(st, "closed before connecting");
    return;
  }
  websocketpp::lib::error_code ec;
  ws_endpoint::connection_ptr con = ep.get_connection(st->url, ec);
  if (ec || !con) {
    report(st, "cannot connect to '" + st->url + "': " + (ec ? ec.message() : "no connection"));
    return;
  }
  con->set_open_handshake_timeout(static_cast<long>(timeout.count()));
  con->set_close_handshake_timeout(static_cast<long>(opts.close_handshake_timeout.count()));

  con->set_open_handler([this, st](websocketpp::connection_hdl hdl) {
    if (st->connect_timer) {
      asio::error_code ignored;
      st->connect_timer->cancel(ignored);
    }
    if (st->abandoned || st->reported) {
      websocketpp::lib::error_code e;
      ep.close(hdl, close_status::normal, "abandoned", e);
      return;
    }
    // Small frames and latency matter: no Nagle delay on the open socket.
    websocketpp::lib::error_code con_ec;
    if (auto c = ep.get_con_from_hdl(hdl, con_ec)) {
      asio::error_code nodelay_ec;
      c->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), nodelay_ec);
      // From the socket itself, only when it knows: websocketpp's own
      // get_remote_endpoint() says "Unknown" on failure, and two unknown
      // ends must never look like one.
      asio::error_code remote_ec;
      auto peer = c->get_raw_socket().remote_endpoint(remote_ec);
      if (!remote_ec) {
        std::ostringstream remote; // asio's form: "IP:port", "[IPv6]:port"
        remote << peer;
        std::lock_guard<std::mutex> lock(st->m);
        st->remote = remote.str();
      }
    }
    st->set_phase(ws_connection::state::phase::open);
    guarded(st->handlers.on_open);
  });
  con->set_message_handler([st](websocketpp::connection_hdl, message_ptr msg) {
    if (st->reported || st->abandoned)
      return;
    guarded(st->handlers.on_message, std::move(msg->get_raw_payload()));
  });
  con->set_fail_handler([this, st](websocketpp::connection_hdl hdl) {
    std::string reason = "cannot connect to " + st->url;
    websocketpp::lib::error_code e;
    if (auto c = ep.get_con_from_hdl(hdl, e)) {
      reason += ": " + c->get_ec().message();
      auto status = c->get_response_code();
      if (status != websocketpp::http::status_code::uninitialized &&
          status != websocketpp::http::status_code::switching_protocols)
        reason += " (HTTP " + std::to_string(static_cast<int>(status)) + ")";
    }
    report(st, reason);
  });
  con->set_close_handler([this, st](websocketpp::connection_hdl hdl) {
    std::string reason = "connection to " + st->url + " closed";
    websocketpp::lib::error_code e;
    if (auto c = ep.get_con_from_hdl(hdl, e)) {
      auto code = c->get_remote_close_code();
      if (code != close_status::blank && code != close_status::no_status &&
          code != close_status::abnormal_close) {
        reason += " by the peer (" + std::to_string(code);
        if (!c->get_remote_close_reason().empty())
          reason += " " + c->get_remote_close_reason();
        reason += ")";
      } else if (!st->gave_up.empty()) {
        reason += ": " + st->gave_up;
      } else if (c->get_ec()) {
        reason += ": " + c->get_ec().message();
      } else if (!c->get_local_close_reason().empty()) {
        reason += ": " + c->get_local_close_reason();
      }
    }
    report(st, reason);
  });

  {
    std::lock_guard<std::mutex> lock(st->m);
    st->hdl = con->get_handle();
  }
  st->connect_timer = std::make_unique<asio::steady_timer>(io());
  st->connect_timer->expires_after(timeout);
  st->connect_timer->async_wait([this, st, timeout](const asio::error_code& e) {
    if (e || st->reported)
      return;
    abandon(st, "cannot connect to " + st->url + ": timed out after " +
                  std::to_string(timeout.count()) + " ms");
  });
  ep.connect(con);
}

void ws_client_endpoint::core::shutdown_connections() {
  std::vector<std::shared_ptr<ws_connection::state>> all;
  {
    std::lock_guard<std::mutex> lock(m);
    for (auto& [id, st] : live)
      all.push_back(st);
  }
  for (auto& st : all) {
    bool open;
    {
      std::lock_guard<std::mutex> lock(st->m);
      open = st->ph == ws_connection::state::phase::open;
    }
    if (open) {
      st->set_phase(ws_connection::state::phase::closing);
      websocketpp::lib::error_code e;
      websocketpp::connection_hdl hdl;
      {
        std::lock_guard<std::mutex> lock(st->m);
        hdl = st->hdl;
      }
      ep.close(hdl, close_status::going_away, "client shutting down", e);
      if (e)
        report(st, "endpoint stopped");
    } else {
      abandon(st, "endpoint stopped");
    }
  }
}

// ---- ws_connection ----

bool ws_connection::send(std::string frame) {
  websocketpp::connection_hdl hdl;
  {
    std::lock_guard<std::mutex> lock(s_->m);
    if (s_->ph != state::phase::open)
      return false;
    hdl = s_->hdl;
  }
  auto c = s_->core.lock();
  if (!c)
    return false;
  // The frame is built and masked here, around the text itself, like the
  // listener's answers: websocketpp would copy it, check its UTF-8 byte by
  // byte and then mask it (our text is valid UTF-8: the JSON writer repairs
  // it). The key comes from std::random_device, as websocketpp's own
  // (RFC 6455 5.3: unpredictable); this client negotiates no extensions.
  thread_local std::random_device entropy;
  std::uint32_t key_word = entropy();
  std::uint8_t key[4];
  std::memcpy(key, &key_word, 4);
  auto header = text_frame_header(frame.size(), key);
  mask_text(frame, key);
  // The inbox belongs to the core and runs only while it exists: a raw
  // pointer is enough. A connection that ends before the frame is written
  // reports on_close as usual.
  return c->host->inbox().push([cp = c.get(), st = s_, hdl = std::move(hdl),
                                header = std::move(header), frame = std::move(frame)]() mutable {
    websocketpp::lib::error_code ec;
    auto con = cp->ep.get_con_from_hdl(hdl, ec);
    if (ec || !con)
      return;
    if (auto msg = prepared_text(*con, header, std::move(frame)))
      con->send(msg);
    // The other end reads nothing while we queue (a frozen peer): past the
    // limit it is given up on, as the listener gives up on a slow client,
    // rather than hold this process's memory until some timeout. Its
    // on_close says why; a link's calls then fail over.
    auto queued = con->get_buffered_amount();
    if (queued > unread_limit(cp->opts.max_message_size) &&
        con->get_state() == websocketpp::session::state::open) {
      st->gave_up = "it reads too slowly (" + std::to_string(queued) + " bytes queued)";
      st->set_phase(ws_connection::state::phase::closing); // sends refused from now on
      con->close(websocketpp::close::status::policy_violation, "reads too slowly", ec);
    }
  });
}

void ws_connection::close(std::string reason) {
  {
    std::lock_guard<std::mutex> lock(s_->m);
    if (s_->ph == state::phase::closed || s_->ph == state::phase::closing)
      return;
    if (s_->ph == state::phase::open)
      s_->ph = state::phase::closing;
  }
  auto c = s_->core.lock();
  if (!c)
    return;
  // Through the inbox, so frames sent before the close go out before it.
  c->host->inbox().push([cp = c.get(), st = s_, reason = std::move(reason)] {
    if (st->reported)
      return;
    websocketpp::connection_hdl hdl;
    {
      std::lock_guard<std::mutex> lock(st->m);
      hdl = st->hdl;
    }
    websocketpp::lib::error_code ec;
    auto con = cp->ep.get_con_from_hdl(hdl, ec);
    if (con && con->get_state() == websocketpp::session::state::open) {
      con->close(close_status::normal, reason, ec);
      if (!ec)
        return; // on_close follows the close handshake
    }
    cp->abandon(st, reason);
  });
}

bool ws_connection::is_open() const {
  std::lock_guard<std::mutex> lock(s_->m);
  return s_->ph == state::phase::open;
}

const std::string& ws_connection::url() const {
  return s_->url;
}

std::string ws_connection::remote_endpoint() const {
  std::lock_guard<std::mutex> lock(s_->m);
  return s_->remote;
}

// ---- timers ----

namespace {

// A timer handle may outlive its endpoint, but an asio timer must not
// outlive its io_service: the endpoint's destructor destroys the asio timer
// of every handle still registered in core::timers.
class asio_timer final : public ws_timer, public std::enable_shared_from_this<asio_timer> {
public:
  asio_timer(const std::shared_ptr<ws_client_endpoint::core>& c, std::function<void()> fn)
    : core_(c), timer_(std::make_unique<asio::steady_timer>(c->io())), fn_(std::move(fn)) {
    std::lock_guard<std::mutex> lock(c->timers_m);
    c->timers.insert(this);
  }

  ~asio_timer() override {
    if (auto c = core_.lock()) {
      std::lock_guard<std::mutex> lock(c->timers_m);
      c->timers.erase(this);
    }
  }

  void arm(std::chrono::milliseconds delay) { // endpoint thread
    if (cancelled_ || !timer_)
      return;
    timer_->expires_after(delay);
    timer_->async_wait([self = shared_from_this()](const asio::error_code& ec) {
      auto fn = std::move(self->fn_);
      self->fn_ = nullptr;
      if (!ec && !self->cancelled_.exchange(true))
        guarded(fn);
    });
  }

  void cancel() override {
    if (cancelled_.exchange(true))
      return;
    auto c = core_.lock();
    if (!c)
      return;
    // Frees the pending wait (and fn's captures) now rather than at expiry.
    asio::post(c->io(), [self = shared_from_this()] {
      if (self->timer_) {
        asio::error_code ignored;
        self->timer_->cancel(ignored);
      }
      self->fn_ = nullptr;
    });
  }

  // The endpoint is going away (its thread is joined): drop the asio timer.
  void release() {
    cancelled_ = true;
    timer_.reset();
  }

private:
  std::weak_ptr<ws_client_endpoint::core> core_;
  std::unique_ptr<asio::steady_timer> timer_;
  std::function<void()> fn_; // endpoint thread only
  std::atomic<bool> cancelled_{false};
};

} // namespace

// ---- ws_client_endpoint ----

ws_client_endpoint::ws_client_endpoint(ws_client_options options,
                                       std::shared_ptr<io_host> host)
  : core_(std::make_shared<core>(options, std::move(host))) {
  auto& ep = core_->ep;
  ep.clear_access_channels(websocketpp::log::alevel::all);
  ep.clear_error_channels(websocketpp::log::elevel::all);
  ep.init_asio(&core_->host->io());
  ep.set_max_message_size(options.max_message_size);
  ep.set_close_handshake_timeout(static_cast<long>(options.close_handshake_timeout.count()));
  ep.start_perpetual();
  if (core_->own_host)
    core_->host->start();
}

void ws_client_endpoint::shutdown() {
  core* c = core_.get();
  {
    std::lock_guard<std::mutex> lock(c->m);
    if (c->stopping)
      return;
    c->stopping = true;
  }
  // The wait below needs the loop running elsewhere.
  if (c->host->on_loop_thread())
    c->host->to_own_thread();
  // Through the inbox: what was handed over goes out first.
  bool queued = c->host->inbox().push([c] {
    c->shutdown_connections();
    c->ep.stop_perpetual();
  });
  if (!queued)
    return; // the loop has ended already
  std::unique_lock<std::mutex> lock(c->m);
  c->cv.wait_for(lock, c->opts.close_handshake_timeout + std::chrono::seconds(1),
                 [c] { return c->live.empty(); });
}

ws_client_endpoint::~ws_client_endpoint() {
  shutdown();
  core* c = core_.get();
  // The loop ends before the endpoint does: websocketpp's pending handlers
  // (a connect, a resolve, an abandoned attempt) point into it. What the
  // loop did not run is dropped with the io_context, never run.
  c->host->stop();
  // Whatever did not finish its close is reported now (the loop is gone,
  // so these callbacks run here, one at a time).
  std::vector<std::shared_ptr<ws_connection::state>> rest;
  {
    std::lock_guard<std::mutex> lock(c->m);
    for (auto& [id, st] : c->live)
      rest.push_back(st);
  }
  for (auto& st : rest)
    c->report(st, "endpoint stopped");
  std::lock_guard<std::mutex> lock(c->timers_m);
  for (asio_timer* t : c->timers)
    t->release();
  c->timers.clear();
}

ws_connection_ptr ws_client_endpoint::connect(const std::string& url, ws_handlers handlers,
                                              std::chrono::milliseconds connect_timeout) {
  auto st = std::make_shared<ws_connection::state>();
  st->core = core_;
  st->url = url;
  st->handlers = std::move(handlers);
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(core_->m);
    stopping = core_->stopping;
    st->id = core_->next_id++;
    if (!stopping)
      core_->live.emplace(st->id, st);
  }
  if (stopping) {
    st->reported = true;
    st->set_phase(ws_connection::state::phase::closed);
    guarded(st->handlers.on_close, std::string("endpoint stopped"));
    st->handlers = {};
  } else {
    if (connect_timeout.count() <= 0)
      connect_timeout = std::chrono::milliseconds(1);
    asio::post(core_->io(), [c = core_, st, connect_timeout] { c->start(st, connect_timeout); });
  }
  return std::make_shared<ws_connection>(st);
}

void ws_client_endpoint::post(std::function<void()> fn) {
  asio::post(core_->io(), [fn = std::move(fn)]() mutable { guarded(fn); });
}

ws_timer_ptr ws_client_endpoint::run_after(std::chrono::milliseconds delay,
                                           std::function<void()> fn) {
  auto t = std::make_shared<asio_timer>(core_, std::move(fn));
  asio::post(core_->io(), [t, delay] { t->arm(delay); });
  return t;
}

bool ws_client_endpoint::on_endpoint_thread() const {
  return core_->host->on_loop_thread();
}

} // namespace mpreg::transport
