// mpreg::client over the shared WebSocket client transport.
//
// One connection at a time; `pending` maps each in-flight u to its
// completion. Whoever removes an entry from `pending` (the answer, the
// deadline timer, a lost connection, close()) completes it, so every
// request completes exactly once.
#include "mpreg/client.hpp"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <random>
#include <unordered_map>

#include "protocol/codec.hpp"
#include "transport/ws_client.hpp"

namespace mpreg {

namespace {

std::chrono::milliseconds to_ms(double seconds) {
  double ms = std::ceil(seconds * 1000.0);
  if (ms > 1e12)
    ms = 1e12;
  return std::chrono::milliseconds(static_cast<long long>(std::max(ms, 1.0)));
}

std::string format_seconds(double s) {
  std::string text = json(s).dump();
  return text + " s";
}

} // namespace

struct client::impl {
  impl(std::string u, client_options o)
    : url(std::move(u)), opts(o), backoff(o.initial_backoff),
      rng(std::random_device{}()) {
    transport::ws_client_options wo;
    wo.max_message_size = opts.max_message_size;
    ep = std::make_unique<transport::ws_client_endpoint>(wo);
  }

  enum class phase {
    idle,         // not connected, nothing in progress
    connecting,   // connect() is waiting for the first open
    open,         // connected
    reconnecting, // lost; a reconnect attempt is scheduled or running
  };

  struct slot {
    callback done;
    transport::ws_timer_ptr timer;
    bool wants_status = false; // answer with the STATUS extension field
  };

  const std::string url;
  const client_options opts;

  mutable std::mutex m;
  mutable std::condition_variable cv;
  phase ph = phase::idle;
  std::uint64_t gen = 0; // bumped per connection attempt; stale callbacks are ignored
  bool keep_connected = false;
  transport::ws_connection_ptr conn;
  std::string last_error;
  std::chrono::milliseconds backoff;
  transport::ws_timer_ptr reconnect_timer;
  std::mt19937_64 rng;
  std::unordered_map<std::string, slot> pending;

  // Last member: destroyed first, so its thread is joined while the state
  // above is still alive for the callbacks it runs.
  std::unique_ptr<transport::ws_client_endpoint> ep;

  // ---- connection management ----

  // Starts an attempt; caller holds m.
  void start_attempt_locked() {
    std::uint64_t g = ++gen;
    transport::ws_handlers h;
    h.on_open = [this, g] { on_open(g); };
    h.on_message = [this](std::string&& frame) { on_frame(std::move(frame)); };
    h.on_close = [this, g](std::string reason) { on_close(g, std::move(reason)); };
    conn = ep->connect(url, std::move(h), opts.connect_timeout);
  }

  void on_open(std::uint64_t g) {
    std::lock_guard<std::mutex> lock(m);
    if (g != gen)
      return;
    ph = phase::open;
    backoff = opts.initial_backoff;
    last_error.clear();
    cv.notify_all();
  }

  void on_close(std::uint64_t g, std::string reason) {
    std::unordered_map<std::string, slot> lost;
    {
      std::lock_guard<std::mutex> lock(m);
      if (g != gen)
        return;
      conn.reset();
      last_error = reason;
      lost.swap(pending);
      if (keep_connected && (ph == phase::open || ph == phase::reconnecting)) {
        ph = phase::reconnecting;
        schedule_reconnect_locked();
      } else {
        ph = phase::idle;
      }
      cv.notify_all();
    }
    fail_all(lost, "connection lost: " + reason);
  }

  void schedule_reconnect_locked() {
    // Jitter: a delay drawn from [backoff/2, backoff], so clients that lost
    // the same node do not come back in lockstep.
    auto hi = std::max<long long>(1, backoff.count());
    std::uniform_int_distribution<long long> pick(hi / 2, hi);
    std::chrono::milliseconds delay(pick(rng));
    backoff = std::min(opts.max_backoff, backoff * 2);
    std::uint64_t g = gen;
    reconnect_timer = ep->run_after(delay, [this, g] {
      std::lock_guard<std::mutex> lock(m);
      if (g != gen || ph != phase::reconnecting || !keep_connected)
        return;
      start_attempt_locked();
    });
  }

  void connect() {
    std::unique_lock<std::mutex> lock(m);
    if (ph == phase::open)
      return;
    if (ph == phase::idle) {
      ph = phase::connecting;
      last_error.clear();
      start_attempt_locked();
    }
    // connecting (ours or another thread's) or reconnecting: wait for it.
    auto limit = opts.connect_timeout + std::chrono::seconds(2);
    cv.wait_for(lock, limit, [this] { return ph == phase::open || ph == phase::idle; });
    if (ph == phase::open) {
      keep_connected = opts.reconnect;
      return;
    }
    std::string why = last_error.empty() ? "cannot connect to " + url + ": timed out" : last_error;
    if (ph == phase::connecting) { // no verdict from the transport in time
      ++gen;
      ph = phase::idle;
      if (conn)
        conn->close("connect timed out");
      conn.reset();
    }
    throw connection_error(why,
                           json::make_object({{"url", url}}));
  }

  void close(const std::string& why) {
    std::unordered_map<std::string, slot> lost;
    transport::ws_connection_ptr c;
    {
      std::lock_guard<std::mutex> lock(m);
      keep_connected = false;
      ++gen;
      ph = phase::idle;
      c = std::move(conn);
      if (reconnect_timer)
        reconnect_timer->cancel();
      reconnect_timer.reset();
      lost.swap(pending);
      cv.notify_all();
    }
    if (c)
      c->close("client closed");
    fail_all(lost, why);
  }

  // ---- requests ----

  static rpc_result failure(std::exception_ptr e) {
    rpc_result r;
    r.error = std::move(e);
    return r;
  }

  void fail_all(std::unordered_map<std::string, slot>& lost, const std::string& why) {
    for (auto& [u, s] : lost) {
      if (s.timer)
        s.timer->cancel();
      if (s.done)
        s.done(failure(std::make_exception_ptr(
          connection_error(why, json::make_object({{"url", url}, {"u", u}})))));
    }
  }

  std::optional<slot> take(const std::string& u) {
    std::lock_guard<std::mutex> lock(m);
    auto it = pending.find(u);
    if (it == pending.end())
      return std::nullopt;
    slot s = std::move(it->second);
    pending.erase(it);
    return s;
  }

  std::string not_connected_reason_locked() const {
    switch (ph) {
    case phase::reconnecting:
      return "not connected to " + url + " (reconnecting" +
             (last_error.empty() ? std::string() : ": " + last_error) + ")";
    case phase::connecting:
      return "not connected to " + url + " (still connecting)";
    default:
      return "not connected to " + url +
             (last_error.empty() ? std::string(": call connect()") : ": " + last_error);
    }
  }

  // Sends `frame` as request `u`; done gets the outcome exactly once.
  // `wait` is the client-side deadline (none: wait for ever).
  void send(const std::string& u, std::string frame, std::optional<double> wait, callback done,
            bool wants_status = false) {
    transport::ws_connection_ptr c;
    {
      std::unique_lock<std::mutex> lock(m);
      if (ph != phase::open || !conn) {
        std::string why = not_connected_reason_locked();
        lock.unlock();
        done(failure(std::make_exception_ptr(
          connection_error(why, json::make_object({{"url", url}, {"u", u}})))));
        return;
      }
      if (pending.count(u)) {
        lock.unlock();
        throw std::invalid_argument("request id '" + u + "' is already in flight");
      }
      c = conn;
      pending.emplace(u, slot{std::move(done), nullptr, wants_status});
    }
    if (wait) {
      double secs = *wait;
      auto t = ep->run_after(to_ms(secs), [this, u, secs] {
        if (auto s = take(u))
          s->done(failure(std::make_exception_ptr(timeout_error(
            "no answer from " + url + " within " + format_seconds(secs),
            json::make_object({{"u", u}, {"timeout", secs}})))));
      });
      std::unique_lock<std::mutex> lock(m);
      auto it = pending.find(u);
      if (it != pending.end())
        it->second.timer = std::move(t);
      else {
        lock.unlock();
        t->cancel();
      }
    }
    if (!c->send(std::move(frame))) {
      if (auto s = take(u)) {
        if (s->timer)
          s->timer->cancel();
        s->done(failure(std::make_exception_ptr(connection_error(
          "connection to " + url + " lost while sending",
          json::make_object({{"url", url}, {"u", u}})))));
      }
    }
  }

  void on_frame(std::string&& frame) {
    json value;
    try {
      value = json::parse(frame);
    } catch (const json_error&) {
      return; // not JSON: nothing to match it to
    }
    // STATUS answers carry the cluster view beside r (a PROTOCOL.md extension).
    std::optional<json> status;
    if (json* st = value.find("status"))
      status = std::move(*st);
    auto in = protocol::decode_value(std::move(value));
    const response* resp = std::get_if<response>(&in);
    if (!resp)
      return; // not an answer (a client gets nothing else); ignore
    auto s = take(resp->u);
    if (!s)
      return; // late answer to a request that timed out, or unknown u
    if (s->timer)
      s->timer->cancel();
    rpc_result out;
    if (resp->error && resp->error->code == static_cast<int>(error_code::deadline_exceeded))
      // One exception type for a passed deadline, whoever saw it pass.
      out.error = std::make_exception_ptr(timeout_error(resp->error->message,
                                                        resp->error->details));
    else if (resp->error)
      out.error = std::make_exception_ptr(rpc_exception(*resp->error));
    else if (s->wants_status && status)
      out.r = std::move(*status);
    else
      out.r = resp->r ? *resp->r : json{};
    s->done(std::move(out));
  }

  // Client-side deadline for a request whose own deadline is `t` seconds.
  std::optional<double> local_wait(std::optional<double> t, bool node_knows) const {
    double secs = t ? *t : opts.default_timeout;
    if (!(secs > 0))
      return std::nullopt;
    return node_knows ? secs + std::max(0.0, opts.timeout_grace) : secs;
  }
};

namespace {

std::future<json> future_of(std::function<void(client::callback)> start) {
  auto p = std::make_shared<std::promise<json>>();
  auto f = p->get_future();
  start([p](rpc_result res) {
    if (res.ok())
      p->set_value(std::move(res.r));
    else
      p->set_exception(res.error);
  });
  return f;
}

} // namespace

client::client(std::string url, client_options options)
  : impl_(std::make_unique<impl>(std::move(url), options)) {}

client::~client() {
  if (impl_)
    impl_->close("client destroyed");
}

client::client(client&&) noexcept = default;

client& client::operator=(client&& other) noexcept {
  if (this != &other) {
    if (impl_)
      impl_->close("client destroyed");
    impl_ = std::move(other.impl_);
  }
  return *this;
}

void client::connect() {
  impl_->connect();
}

void client::close() {
  impl_->close("client closed");
}

bool client::connected() const {
  std::lock_guard<std::mutex> lock(impl_->m);
  return impl_->ph == impl::phase::open;
}

bool client::wait_connected(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(impl_->m);
  return impl_->cv.wait_for(lock, timeout, [this] { return impl_->ph == impl::phase::open; });
}

const std::string& client::url() const {
  return impl_->url;
}

std::size_t client::pending() const {
  std::lock_guard<std::mutex> lock(impl_->m);
  return impl_->pending.size();
}

void client::request_async(std::vector<command> cmds, callback done, request_options options) {
  mpreg::request req;
  req.u = protocol::new_id();
  req.cmds = std::move(cmds);
  double secs = options.timeout ? *options.timeout : impl_->opts.default_timeout;
  bool tell_node = options.send_timeout && secs > 0;
  if (tell_node)
    req.timeout = secs;
  auto wait = impl_->local_wait(secs, tell_node);
  std::string frame = protocol::encode(req);
  impl_->send(req.u, std::move(frame), wait, std::move(done));
}

std::future<json> client::request(std::vector<command> cmds, request_options options) {
  return future_of([&](callback done) {
    request_async(std::move(cmds), std::move(done), options);
  });
}

void client::request_raw_async(json message, callback done, request_options options) {
  if (!message.is_object())
    throw std::invalid_argument(std::string("a message must be a JSON object, got ") +
                                message.type_name());
  const json* u = message.find("u");
  if (u && !u->is_string())
    // Answers are matched by a string u: replacing it would hide the id the
    // caller chose, keeping it would never match.
    throw std::invalid_argument(std::string("a message's u must be a string, got ") +
                                u->type_name());
  if (!u)
    message["u"] = protocol::new_id();
  std::string id = message.find("u")->as_string();
  std::optional<double> t = options.timeout;
  bool node_knows = false;
  if (const json* mt = message.find("timeout"); mt && mt->is_number() && mt->as_double() > 0) {
    node_knows = true;
    if (!t)
      t = mt->as_double();
  }
  auto wait = impl_->local_wait(t, node_knows);
  impl_->send(id, message.dump(), wait, std::move(done));
}

json client::cluster_status(std::optional<double> timeout) {
  std::string id = protocol::new_id();
  json message = json::make_object(
    {{"role", "server"}, {"server", json::make_object({{"what", "STATUS"}})}, {"u", id}});
  auto wait = impl_->local_wait(timeout, false);
  return future_of([&](callback done) {
           impl_->send(id, message.dump(), wait, std::move(done), true);
         })
    .get();
}

std::future<json> client::request_raw(json message, request_options options) {
  return future_of([&](callback done) {
    request_raw_async(std::move(message), std::move(done), options);
  });
}

json client::call(const std::string& fun, json::array args, json::object kwargs,
                  std::vector<std::string> locs, std::optional<double> timeout) {
  command c;
  // Named after the function plus 40 random bits: readable in error
  // messages, and never equal to an argument by accident (MPREG 2.0 nodes
  // took a command's own name among its arguments for a cycle).
  c.name = "|" + fun + "#" + protocol::new_id().substr(18);
  c.fun = fun;
  c.args = std::move(args);
  c.kwargs = std::move(kwargs);
  c.locs = std::move(locs);
  std::string name = c.name;
  request_options o;
  o.timeout = timeout;
  std::vector<command> cmds;
  cmds.push_back(std::move(c));
  json r = request(std::move(cmds), o).get();
  if (json* v = r.find(name))
    return std::move(*v);
  if (r.is_object() && r.size() == 1)
    return std::move(r.as_object().front().value);
  return r;
}

} // namespace mpreg
