// mpreg-bench: a load generator for MPREG nodes, in the spirit of
// redis-benchmark and wrk.
//
// -c connections each keep -P requests in flight; every answer is validated
// (right u, error null, exactly the expected r) and timed from send to
// receive. --idle N only opens N connections and holds them (to measure a
// node's memory per idle session).
//
// The websocketpp client lives in this file only (each websocketpp
// translation unit costs ~15 s to compile).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <rapidjson/document.h>
#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>

#include "mpreg/json.hpp"
#include "protocol/codec.hpp"
#include "util/fd_limit.hpp"

namespace {

using mpreg::json;

// websocketpp's default client draws every frame's mask from std::random_device
// (a hardware RNG instruction per frame, ~7% of the client's CPU). Masks need
// no cryptographic quality here: a per-thread xorshift keeps frames valid and
// leaves the cores to the server under test.
struct fast_rng {
  std::uint32_t operator()() {
    thread_local std::uint32_t x =
      static_cast<std::uint32_t>(std::hash<std::thread::id>{}(std::this_thread::get_id())) | 1u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
  }
};
struct client_config : websocketpp::config::asio_client {
  using type = client_config;
  using rng_type = fast_rng;
};
using client_t = websocketpp::client<client_config>;
using hdl_t = websocketpp::connection_hdl;
using clock_type = std::chrono::steady_clock;

// Stands for the request's u inside request and expected-answer templates.
// Putting u into the argument values too means an answer that carries another
// request's results fails validation, not only one with a wrong u.
constexpr std::string_view placeholder = "@@U@@";
// Every u is RUNID-CONN-SEQUENCE in fixed width (6+1+5+1+10): echo1k's value
// stays exactly 1 KiB, and an answer's u leads straight to its request.
constexpr std::size_t run_id_length = 6;
constexpr std::size_t seq_digits = 10;
constexpr std::size_t u_length = run_id_length + 1 + 5 + 1 + seq_digits;

// --idle: set once stdin reaches its end.
std::atomic<bool> stdin_closed{false};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           clock_type::now().time_since_epoch())
    .count();
}

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "mpreg-bench: %s\n", why.c_str());
  std::exit(2);
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos)
      return out;
    start = pos + 1;
  }
}

// ---------------------------------------------------------------- options

struct options {
  std::size_t connections = 1;
  std::size_t pipeline = 1;
  std::uint64_t requests = 0; // 0: bounded by duration only
  double duration = 0;        // seconds; 0: bounded by requests only
  double warmup = 0;          // seconds of unrecorded load before measuring
  double timeout = 10;        // seconds before an unanswered request is a failure
  std::int64_t pause_ns = 0;  // after an answer, before that slot's next request
  std::string url;
  std::vector<std::string> locs;
  std::vector<std::vector<std::string>> locs_per_step;
  std::string workload = "echo";
  std::string request_file;
  bool json_output = false;
  bool quiet = false;
  std::size_t threads = 1;
  std::size_t idle = 0;
};

const char* usage_text =
  "usage: mpreg-bench [options]\n"
  "  --url ws://H:P          node to load (default $MPREG_URL, then ws://127.0.0.1:6666)\n"
  "  -c N                    connections (default 1)\n"
  "  -P N                    requests in flight per connection (default 1)\n"
  "  -n N                    total requests (default 10000 unless -d is given)\n"
  "  -d SECONDS              run for this long (with -n: whichever ends first)\n"
  "  --warmup SECONDS        unrecorded load before measuring (default 0)\n"
  "  -w, --workload W        echo | echo1k | chain3 | fan10 | fan:N | chain:N (default echo)\n"
  "  --request FILE          send this request JSON instead (u replaced; checks u and error)\n"
  "  --locs a,b              locs on every command\n"
  "  --locs-per-step 'a;b;c' locs of command i: entry i (cycling), overrides --locs\n"
  "  --timeout SECONDS       an answer later than this is a failure (default 10)\n"
  "  --pause-us MICROSECONDS after each answer, wait this long (at least) before the\n"
  "                          next request: a client with think time (default 0)\n"
  "  --threads 1|2           Asio threads of the client (default 1)\n"
  "  --json                  one machine-readable result line on stdout\n"
  "  -q, --quiet             no progress lines on stderr\n"
  "  --idle N                open N idle connections, hold them until stdin EOF or SIGTERM\n";

options parse_options(int argc, char** argv) {
  options o;
  bool have_n = false;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc)
      die(std::string("missing value for ") + argv[i]);
    return argv[++i];
  };
  auto number = [&](int& i, double lo, double hi) {
    std::string flag = argv[i], v = value(i);
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(d >= lo && d <= hi))
      die("bad value for " + flag + ": " + v);
    return d;
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-c" || a == "--connections")
      o.connections = static_cast<std::size_t>(number(i, 1, 100000));
    else if (a == "-P" || a == "--pipeline")
      o.pipeline = static_cast<std::size_t>(number(i, 1, 100000));
    else if (a == "-n" || a == "--requests") {
      o.requests = static_cast<std::uint64_t>(number(i, 1, 1e12));
      have_n = true;
    } else if (a == "-d" || a == "--duration")
      o.duration = number(i, 0.001, 86400);
    else if (a == "--warmup")
      o.warmup = number(i, 0, 3600);
    else if (a == "--timeout")
      o.timeout = number(i, 0.001, 3600);
    else if (a == "--url")
      o.url = value(i);
    else if (a == "--locs")
      o.locs = split(value(i), ',');
    else if (a == "--locs-per-step") {
      for (auto& step : split(value(i), ';'))
        o.locs_per_step.push_back(step.empty() ? std::vector<std::string>{} : split(step, ','));
    } else if (a == "-w" || a == "--workload")
      o.workload = value(i);
    else if (a == "--request")
      o.request_file = value(i);
    else if (a == "--json")
      o.json_output = true;
    else if (a == "-q" || a == "--quiet")
      o.quiet = true;
    else if (a == "--pause-us")
      o.pause_ns = static_cast<std::int64_t>(number(i, 0, 10'000'000) * 1000);
    else if (a == "--threads")
      o.threads = static_cast<std::size_t>(number(i, 1, 2));
    else if (a == "--idle")
      o.idle = static_cast<std::size_t>(number(i, 1, 1000000));
    else if (a == "-h" || a == "--help") {
      std::fputs(usage_text, stdout);
      std::exit(0);
    } else
      die("unknown argument " + a + "\n" + usage_text);
  }
  if (o.locs.size() == 1 && o.locs[0].empty())
    o.locs.clear();
  if (o.idle)
    o.threads = 1; // nothing to share out, and shutdown() stays on one thread
  if (!have_n && o.duration == 0)
    o.requests = 10000;
  if (o.url.empty()) {
    const char* env = std::getenv("MPREG_URL");
    o.url = env && *env ? env : "ws://127.0.0.1:6666";
  }
  return o;
}

// ---------------------------------------------------------------- workloads

struct workload {
  std::string name;
  std::vector<std::string> pieces; // request text split at the placeholder
  std::optional<json> expected;    // r with placeholders; absent: check u and error only
  std::size_t commands = 0;
  std::size_t text_size = 0; // of one request
};

json strings(const std::vector<std::string>& v) {
  json a = json::make_array();
  for (const auto& s : v)
    a.push_back(s);
  return a;
}

// Builds the command list with the locs the options ask for.
class command_list {
public:
  explicit command_list(const options& o) : o_(o) {}
  void add(const std::string& name, const char* fun, json::array args) {
    json c = json::make_object({{"name", name}, {"fun", fun}, {"args", json(std::move(args))}});
    const auto& locs = o_.locs_per_step.empty()
                         ? o_.locs
                         : o_.locs_per_step[cmds_.size() % o_.locs_per_step.size()];
    if (!locs.empty())
      c["locs"] = strings(locs);
    cmds_.push_back(std::move(c));
  }
  json take() { return json(std::move(cmds_)); }
  std::size_t size() const { return cmds_.size(); }

private:
  const options& o_;
  json::array cmds_;
};

std::size_t parse_width(const std::string& w, const char* prefix) {
  std::string digits = w.substr(std::strlen(prefix));
  char* end = nullptr;
  unsigned long n = std::strtoul(digits.c_str(), &end, 10);
  if (digits.empty() || *end != '\0' || n < 1 || n > 100000)
    die("bad workload " + w + " (N from 1 to 100000)");
  return n;
}

workload make_workload(const options& o) {
  workload wl;
  const std::string u(placeholder);
  json request;
  if (!o.request_file.empty()) {
    std::ifstream in(o.request_file);
    if (!in)
      die("cannot read " + o.request_file);
    std::stringstream text;
    text << in.rdbuf();
    try {
      request = json::parse(text.str());
    } catch (const std::exception& e) {
      die(o.request_file + ": " + e.what());
    }
    if (!request.is_object())
      die(o.request_file + ": not a JSON object");
    request["u"] = u;
    const json* cmds = request.find("cmds");
    wl.commands = cmds ? cmds->size() : 0;
    wl.name = "request:" + o.request_file;
  } else {
    command_list cl(o);
    const std::string& w = o.workload;
    if (w == "echo") {
      cl.add("a", "echo", {"hi-" + u});
      wl.expected = json::make_object({{"a", "hi-" + u}});
    } else if (w == "echo1k") {
      std::string v = std::string(1024 - u_length, 'x') + u; // 1024 bytes once u is in
      cl.add("a", "echo", {v});
      wl.expected = json::make_object({{"a", v}});
    } else if (w == "chain3") {
      std::string x = "x-" + u;
      cl.add("a", "echo", {x});
      cl.add("b", "echo", {"a"});
      cl.add("c", "echos", {"a", "b"});
      wl.expected = json::make_object({{"c", json::make_array({x, x})}});
    } else if (w == "fan10" || w.rfind("fan:", 0) == 0) {
      std::size_t n = w == "fan10" ? 10 : parse_width(w, "fan:");
      json::array refs, values;
      for (std::size_t i = 0; i < n; ++i) {
        std::string v = "v" + std::to_string(i) + "-" + u;
        cl.add("e" + std::to_string(i), "echo", {v});
        refs.emplace_back("e" + std::to_string(i));
        values.emplace_back(v);
      }
      cl.add("sink", "echos", std::move(refs));
      wl.expected = json::make_object({{"sink", json(std::move(values))}});
    } else if (w.rfind("chain:", 0) == 0) {
      std::size_t n = parse_width(w, "chain:");
      std::string x = "x-" + u;
      cl.add("c0", "echo", {x});
      for (std::size_t i = 1; i < n; ++i)
        cl.add("c" + std::to_string(i), "echo", {"c" + std::to_string(i - 1)});
      wl.expected = json::make_object({{"c" + std::to_string(n - 1), x}});
    } else {
      die("unknown workload " + w + " (echo, echo1k, chain3, fan10, fan:N, chain:N)");
    }
    wl.commands = cl.size();
    wl.name = w;
    request = json::make_object({{"role", "rpc"}, {"u", u}, {"cmds", cl.take()}});
  }
  std::string text = request.dump();
  std::size_t start = 0;
  for (auto pos = text.find(placeholder); pos != std::string::npos;
       pos = text.find(placeholder, start)) {
    wl.pieces.push_back(text.substr(start, pos - start));
    start = pos + placeholder.size();
  }
  wl.pieces.push_back(text.substr(start));
  wl.text_size = text.size() + (wl.pieces.size() - 1) * (u_length - placeholder.size());
  return wl;
}

// True when `actual` is exactly `expected` with the placeholder read as u.
bool matches(const rapidjson::Value& actual, const json& expected, std::string_view u) {
  switch (expected.type()) {
  case json::kind::null:
    return actual.IsNull();
  case json::kind::boolean:
    return actual.IsBool() && actual.GetBool() == expected.as_bool();
  case json::kind::integer:
    return actual.IsInt64() && actual.GetInt64() == expected.as_int();
  case json::kind::unsigned_integer:
    return actual.IsUint64() && actual.GetUint64() == expected.as_uint();
  case json::kind::number:
    return actual.IsNumber() && actual.GetDouble() == expected.as_double();
  case json::kind::string: {
    if (!actual.IsString())
      return false;
    std::string_view a(actual.GetString(), actual.GetStringLength());
    std::string_view e = expected.as_string();
    auto pos = e.find(placeholder);
    if (pos == std::string_view::npos)
      return a == e;
    std::string_view tail = e.substr(pos + placeholder.size());
    return a.size() == pos + u.size() + tail.size() && a.substr(0, pos) == e.substr(0, pos) &&
           a.substr(pos, u.size()) == u && a.substr(pos + u.size()) == tail;
  }
  case json::kind::array: {
    const auto& items = expected.as_array();
    if (!actual.IsArray() || actual.Size() != items.size())
      return false;
    for (rapidjson::SizeType i = 0; i < actual.Size(); ++i)
      if (!matches(actual[i], items[i], u))
        return false;
    return true;
  }
  case json::kind::object: {
    const auto& members = expected.as_object();
    if (!actual.IsObject() || actual.MemberCount() != members.size())
      return false;
    for (const auto& m : members) {
      auto it = actual.FindMember(
        rapidjson::StringRef(m.key.data(), static_cast<rapidjson::SizeType>(m.key.size())));
      if (it == actual.MemberEnd() || !matches(it->value, m.value, u))
        return false;
    }
    return true;
  }
  }
  return false;
}

// ---------------------------------------------------------------- the run

struct connection {
  std::size_t index = 0;
  hdl_t hdl;
  std::mutex mu; // message handlers and the timer (with --threads 2, two threads)
  std::string u_prefix; // RUNID-CONN-
  std::unordered_map<std::uint64_t, std::int64_t> inflight; // sequence -> send time (ns)
  std::uint64_t seq = 0;
  std::vector<std::int64_t> latencies; // ns, measured requests only
  std::int64_t last_done = 0;
  std::size_t pausing = 0; // slots waiting out --pause-us before their next send
  bool open = false;
  bool finished = false; // nothing more to send or receive
};

class bench {
public:
  bench(options o, workload wl) : o_(std::move(o)), wl_(std::move(wl)) {
    char t[32];
    std::snprintf(t, sizeof t, "%g", o_.timeout);
    timeout_text_ = t;
    auto id = mpreg::protocol::new_id();
    // The random part of a fresh id: u differs between runs.
    std::string run_id = id.substr(id.size() - run_id_length);
    client_.clear_access_channels(websocketpp::log::alevel::all);
    client_.clear_error_channels(websocketpp::log::elevel::all);
    client_.set_error_channels(websocketpp::log::elevel::rerror | websocketpp::log::elevel::fatal);
    client_.init_asio();
    client_.set_open_handshake_timeout(std::max(10000L, static_cast<long>(o_.timeout * 1000)));
    client_.set_close_handshake_timeout(1000);
    std::size_t n = o_.idle ? o_.idle : o_.connections;
    conns_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      conns_.push_back(std::make_unique<connection>());
      conns_.back()->index = i;
      char prefix[16];
      std::snprintf(prefix, sizeof prefix, "-%05zu-", i % 100000);
      conns_.back()->u_prefix = run_id + prefix;
    }
  }

  int run() {
    asio::signal_set sigs(client_.get_io_service(), SIGINT, SIGTERM);
    sigs_ = &sigs;
    sigs.async_wait([this](const std::error_code& err, int) {
      if (!err)
        interrupt();
    });
    tick_timer_ = std::make_unique<asio::steady_timer>(client_.get_io_service());
    started_ = now_ns();
    // Connecting thousands at once overflows the listen backlog (SYN retries
    // cost seconds), so at most this many handshakes are pending at a time.
    for (std::size_t i = 0; i < std::min<std::size_t>(conns_.size(), 128); ++i)
      connect_next();
    arm_tick();
    std::thread second;
    if (o_.threads > 1)
      second = std::thread([this] { client_.run(); });
    client_.run();
    if (second.joinable())
      second.join();
    sigs_ = nullptr;
    if (connect_error_) {
      std::fprintf(stderr, "mpreg-bench: cannot connect to %s: %s\n", o_.url.c_str(),
                   connect_error_message_.c_str());
      return 2;
    }
    if (o_.idle) {
      for (const auto& s : failure_samples_)
        std::fprintf(stderr, "mpreg-bench: %s\n", s.c_str());
      return failures_.load() ? 1 : 0;
    }
    return report();
  }

private:
  // ---- connecting

  void connect_next() {
    std::lock_guard<std::mutex> g(connect_mu_); // client::connect is not thread-safe
    if (next_connect_ >= conns_.size() || stopping_)
      return;
    connection* c = conns_[next_connect_++].get();
    std::error_code ec;
    auto con = client_.get_connection(o_.url, ec);
    if (ec) {
      connect_failed(ec.message());
      return;
    }
    c->hdl = con->get_handle();
    con->set_open_handler([this, c](hdl_t h) { on_open(*c, h); });
    con->set_fail_handler([this, c](hdl_t h) {
      auto con = client_.get_con_from_hdl(h);
      on_gone(*c, "connection failed: " + con->get_ec().message());
    });
    con->set_close_handler([this, c](hdl_t h) {
      auto con = client_.get_con_from_hdl(h);
      on_gone(*c, "connection closed by the server: " + con->get_remote_close_reason());
    });
    con->set_message_handler(
      [this, c](hdl_t, client_t::message_ptr msg) { on_message(*c, msg->get_raw_payload()); });
    client_.connect(con);
  }

  void connect_failed(const std::string& why) {
    {
      std::lock_guard<std::mutex> g(fail_mu_);
      if (!connect_error_) {
        connect_error_ = true;
        connect_error_message_ = why;
      }
    }
    shutdown();
  }

  void on_open(connection& c, hdl_t h) {
    std::error_code ec;
    client_.get_con_from_hdl(h)->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec);
    {
      std::lock_guard<std::mutex> g(c.mu);
      c.open = true;
    }
    open_now_.fetch_add(1);
    if (opened_.fetch_add(1) + 1 == conns_.size())
      all_open();
    else
      connect_next();
  }

  void all_open() {
    if (o_.idle) {
      std::printf("mpreg-bench: %zu idle connections open to %s\n", conns_.size(),
                  o_.url.c_str());
      std::fflush(stdout);
      // stdin EOF ends the hold (the caller closes its end of the pipe). The
      // reader may outlive the run blocked in read(), so it touches only a
      // global flag, which the timer polls.
      std::thread([] {
        char buf[256];
        while (::read(0, buf, sizeof buf) > 0) {
        }
        stdin_closed = true;
      }).detach();
      return;
    }
    std::int64_t now = now_ns();
    measure_start_ = now + static_cast<std::int64_t>(o_.warmup * 1e9);
    deadline_ = o_.duration > 0 ? measure_start_ + static_cast<std::int64_t>(o_.duration * 1e9)
                                : INT64_MAX;
    load_started_ = true;
    for (auto& c : conns_) {
      std::lock_guard<std::mutex> g(c->mu);
      for (std::size_t i = 0; i < o_.pipeline; ++i)
        if (!send_one(*c, now_ns()))
          break;
      finish_if_idle(*c);
    }
  }

  // ---- load

  // Sends the next request on c (caller holds c.mu). False when the run is
  // over for c: budget spent, deadline passed or the connection is gone.
  bool send_one(connection& c, std::int64_t now) {
    if (stopping_ || stop_sending_ || c.finished || !c.open)
      return false;
    if (now >= measure_start_) {
      if (now >= deadline_)
        return false;
      if (o_.requests && issued_.fetch_add(1) >= o_.requests)
        return false;
    }
    std::uint64_t seq = c.seq++;
    char u[u_length];
    std::memcpy(u, c.u_prefix.data(), c.u_prefix.size());
    for (std::size_t i = u_length, v = seq; i > c.u_prefix.size(); v /= 10)
      u[--i] = static_cast<char>('0' + v % 10);
    std::string text;
    text.reserve(wl_.text_size);
    for (std::size_t i = 0; i < wl_.pieces.size(); ++i) {
      if (i)
        text.append(u, u_length);
      text += wl_.pieces[i];
    }
    std::int64_t t = now_ns();
    c.inflight.emplace(seq, t);
    std::error_code ec;
    client_.send(c.hdl, text, websocketpp::frame::opcode::text, ec);
    if (ec) {
      c.inflight.erase(seq);
      fail("send failed: " + ec.message());
      return false;
    }
    return true;
  }

  void on_message(connection& c, const std::string& payload) {
    std::int64_t now = now_ns();
    char value_buf[65536];
    char parse_buf[4096];
    rapidjson::MemoryPoolAllocator<> value_alloc(value_buf, sizeof value_buf);
    rapidjson::MemoryPoolAllocator<> parse_alloc(parse_buf, sizeof parse_buf);
    rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>,
                               rapidjson::MemoryPoolAllocator<>>
      doc(&value_alloc, sizeof parse_buf, &parse_alloc);
    doc.Parse(payload.data(), payload.size()); // not in situ: failures quote the payload

    std::lock_guard<std::mutex> g(c.mu);
    std::string_view u;
    if (!doc.HasParseError() && doc.IsObject()) {
      auto it = doc.FindMember("u");
      if (it != doc.MemberEnd() && it->value.IsString())
        u = {it->value.GetString(), it->value.GetStringLength()};
    }
    auto pending = c.inflight.end();
    if (auto seq = sequence_of(c, u))
      pending = c.inflight.find(*seq);
    if (pending == c.inflight.end()) {
      // Not one of ours: sending another request would exceed -P; a request
      // this stood in for expires and is replaced by the timer.
      fail("answer with an unknown or missing u: " + payload.substr(0, 200));
      return;
    }
    std::int64_t sent = pending->second;
    c.inflight.erase(pending);
    if (auto why = check(doc, u)) {
      fail(*why + ": " + payload.substr(0, 200));
    } else {
      completed_.fetch_add(1, std::memory_order_relaxed);
      if (sent >= measure_start_) {
        c.latencies.push_back(now - sent);
        c.last_done = std::max(c.last_done, now);
      }
    }
    if (o_.pause_ns > 0)
      send_after_pause(c);
    else
      send_one(c, now);
    finish_if_idle(c);
  }

  // --pause-us: the slot's next request goes out once the pause is over
  // (caller holds c.mu). A timer per slot: with -P above 1 pauses overlap.
  void send_after_pause(connection& c) {
    if (stopping_ || stop_sending_ || c.finished)
      return;
    ++c.pausing;
    auto timer = std::make_shared<asio::steady_timer>(client_.get_io_service(),
                                                      std::chrono::nanoseconds(o_.pause_ns));
    timer->async_wait([this, &c, timer](const std::error_code&) {
      std::lock_guard<std::mutex> g(c.mu);
      --c.pausing;
      send_one(c, now_ns());
      finish_if_idle(c);
    });
  }

  // The sequence number a u of this connection carries.
  static std::optional<std::uint64_t> sequence_of(const connection& c, std::string_view u) {
    if (u.size() != u_length || u.substr(0, c.u_prefix.size()) != c.u_prefix)
      return std::nullopt;
    std::uint64_t seq = 0;
    for (char ch : u.substr(c.u_prefix.size())) {
      if (ch < '0' || ch > '9')
        return std::nullopt;
      seq = seq * 10 + static_cast<std::uint64_t>(ch - '0');
    }
    return seq;
  }

  // Why an answer is wrong, or nothing when it is right.
  template <class Doc>
  std::optional<std::string> check(const Doc& doc, std::string_view u) const {
    auto error = doc.FindMember("error");
    if (error == doc.MemberEnd())
      return "answer without an error member";
    if (!error->value.IsNull())
      return std::string("error answer");
    auto r = doc.FindMember("r");
    if (r == doc.MemberEnd() || r->value.IsNull())
      return "answer without r";
    if (wl_.expected && !matches(r->value, *wl_.expected, u))
      return "wrong r";
    return std::nullopt;
  }

  // Closes c once it has nothing in flight and nothing more to send.
  void finish_if_idle(connection& c) {
    if (c.finished || !c.inflight.empty() || c.pausing)
      return;
    c.finished = true;
    std::error_code ec;
    client_.close(c.hdl, websocketpp::close::status::normal, "done", ec);
    if (finished_.fetch_add(1) + 1 == conns_.size())
      all_finished();
  }

  void all_finished() {
    stopping_ = true;
    ended_ = now_ns();
    std::error_code ec;
    if (sigs_)
      sigs_->cancel(ec);
  }

  void on_gone(connection& c, const std::string& why) {
    bool was_open;
    {
      std::lock_guard<std::mutex> g(c.mu);
      was_open = c.open;
    }
    bool expected = stopping_; // read before all_finished() below sets it
    // A connection that never opened: the run cannot happen as asked.
    if (!was_open && !expected) {
      connect_failed(why);
      return;
    }
    {
      std::lock_guard<std::mutex> g(c.mu);
      c.open = false;
      if (!c.inflight.empty())
        fail(why + " (" + std::to_string(c.inflight.size()) + " requests lost)",
             c.inflight.size());
      c.inflight.clear();
      if (!c.finished) {
        c.finished = true;
        if (!expected && !o_.idle && load_started_)
          fail(why);
        if (finished_.fetch_add(1) + 1 == conns_.size())
          all_finished();
      }
    }
    if (was_open)
      open_now_.fetch_sub(1);
    if (o_.idle && was_open && !expected)
      fail("idle " + why);
  }

  void fail(const std::string& why, std::uint64_t count = 1) {
    failures_.fetch_add(count);
    std::lock_guard<std::mutex> g(fail_mu_);
    if (failure_samples_.size() < 5)
      failure_samples_.push_back(why);
  }

  // ---- timer: stuck requests, progress, the end

  void arm_tick() {
    tick_timer_->expires_after(std::chrono::milliseconds(100));
    tick_timer_->async_wait([this](const std::error_code& err) {
      if (!err)
        tick();
    });
  }

  void tick() {
    std::int64_t now = now_ns();
    if (o_.idle && stdin_closed && !stopping_)
      shutdown();
    if (load_started_ && !stopping_) {
      auto limit = static_cast<std::int64_t>(o_.timeout * 1e9);
      for (auto& c : conns_) {
        std::lock_guard<std::mutex> g(c->mu);
        std::size_t expired = 0;
        for (auto it = c->inflight.begin(); it != c->inflight.end();) {
          if (now - it->second > limit) {
            it = c->inflight.erase(it);
            ++expired;
          } else {
            ++it;
          }
        }
        if (expired)
          fail("no answer within " + timeout_text_ + " s", expired);
        // Keeps the pipeline full after expiries; ends connections past the deadline.
        while (c->inflight.size() + c->pausing < o_.pipeline && send_one(*c, now)) {
        }
        finish_if_idle(*c);
      }
      progress(now);
    }
    if (stopping_) {
      // Closing handshakes are bounded too: stop the loop if they hang.
      if (open_now_.load() == 0 || now - ended_ > 3'000'000'000LL) {
        client_.get_io_service().stop();
        return;
      }
    }
    arm_tick();
  }

  void progress(std::int64_t now) {
    std::int64_t second = (now - started_) / 1'000'000'000;
    if (second == last_progress_)
      return;
    std::uint64_t done = completed_.load();
    auto rate = (done - progress_done_) / static_cast<std::uint64_t>(second - last_progress_);
    // Short runs stay quiet; from ~3 s on, one line a second.
    if (!o_.quiet && second >= 3)
      std::fprintf(stderr,
                   "mpreg-bench: %" PRId64 " s, %" PRIu64 " answers (%" PRIu64
                   "/s in the last second), %" PRIu64 " failures\n",
                   second, done, rate, failures_.load());
    last_progress_ = second;
    progress_done_ = done;
  }

  void interrupt() {
    if (o_.idle || !load_started_) {
      shutdown();
      return;
    }
    // Load: stop sending, let the requests in flight finish, report.
    stop_sending_ = true;
    std::fprintf(stderr, "mpreg-bench: interrupted, draining\n");
  }

  // Closes every open connection and ends the run.
  void shutdown() {
    if (stopping_)
      return;
    stopping_ = true;
    ended_ = now_ns();
    std::error_code ec;
    if (sigs_)
      sigs_->cancel(ec);
    for (auto& c : conns_) {
      std::lock_guard<std::mutex> g(c->mu);
      if (c->open)
        client_.close(c->hdl, websocketpp::close::status::normal, "done", ec);
    }
  }

  // ---- the result

  int report() {
    std::vector<std::int64_t> lat;
    std::int64_t last = 0;
    for (auto& c : conns_) {
      lat.insert(lat.end(), c->latencies.begin(), c->latencies.end());
      last = std::max(last, c->last_done);
    }
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) {
      if (lat.empty())
        return 0.0;
      auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(lat.size())));
      return static_cast<double>(lat[std::min(lat.size(), std::max<std::size_t>(rank, 1)) - 1]) /
             1e3;
    };
    double seconds = last > measure_start_ ? static_cast<double>(last - measure_start_) / 1e9 : 0;
    double rps = seconds > 0 ? static_cast<double>(lat.size()) / seconds : 0;
    double us_per_cmd = rps > 0 && wl_.commands ? 1e6 / (rps * static_cast<double>(wl_.commands))
                                                : 0;
    std::uint64_t failures = failures_.load();
    if (o_.json_output) {
      json line = json::make_object({{"workload", wl_.name},
                                     {"url", o_.url},
                                     {"connections", o_.connections},
                                     {"pipeline", o_.pipeline},
                                     {"commands_per_request", wl_.commands},
                                     {"requests", static_cast<unsigned long long>(lat.size())},
                                     {"failures", static_cast<unsigned long long>(failures)},
                                     {"seconds", seconds},
                                     {"rps", rps},
                                     {"us_per_command", us_per_cmd},
                                     {"p50_us", pct(0.50)},
                                     {"p90_us", pct(0.90)},
                                     {"p99_us", pct(0.99)},
                                     {"max_us", pct(1.0)}});
      std::printf("%s\n", line.dump().c_str());
    } else {
      std::printf("mpreg-bench: %s against %s, %zu connections x %zu in flight, %zu "
                  "commands/request\n",
                  wl_.name.c_str(), o_.url.c_str(), o_.connections, o_.pipeline, wl_.commands);
      std::printf("  %zu answers validated in %.3f s, %" PRIu64 " failures\n", lat.size(),
                  seconds, failures);
      std::printf("  %.1f requests/s, %.2f us/command\n", rps, us_per_cmd);
      std::printf("  latency us: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", pct(0.5), pct(0.9),
                  pct(0.99), pct(1.0));
    }
    for (const auto& s : failure_samples_)
      std::fprintf(stderr, "mpreg-bench: failure: %s\n", s.c_str());
    if (failures)
      return 1;
    if (lat.empty()) {
      std::fprintf(stderr, "mpreg-bench: no answer was measured\n");
      return 1;
    }
    return 0;
  }

  options o_;
  workload wl_;
  std::string timeout_text_;
  client_t client_;
  std::vector<std::unique_ptr<connection>> conns_;
  asio::signal_set* sigs_ = nullptr;
  std::unique_ptr<asio::steady_timer> tick_timer_;

  std::mutex connect_mu_;
  std::size_t next_connect_ = 0;
  std::atomic<std::size_t> opened_{0};
  std::atomic<std::size_t> open_now_{0};
  std::atomic<std::size_t> finished_{0};

  std::atomic<bool> load_started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stop_sending_{false};
  std::int64_t started_ = 0;
  std::atomic<std::int64_t> measure_start_{INT64_MAX};
  std::atomic<std::int64_t> deadline_{INT64_MAX};
  std::atomic<std::int64_t> ended_{0};
  std::atomic<std::uint64_t> issued_{0};
  std::atomic<std::uint64_t> completed_{0};
  std::int64_t last_progress_ = 0;
  std::uint64_t progress_done_ = 0;

  std::atomic<std::uint64_t> failures_{0};
  std::mutex fail_mu_;
  std::vector<std::string> failure_samples_;
  bool connect_error_ = false;
  std::string connect_error_message_;
};

} // namespace

int main(int argc, char** argv) {
  mpreg::util::raise_fd_limit(); // thousands of connections need thousands of descriptors
  options o = parse_options(argc, argv);
  workload wl = make_workload(o);
  bench b(std::move(o), std::move(wl));
  return b.run();
}
