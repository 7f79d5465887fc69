// The command line and config-file front end of `mpreg-node`.
#include "config/node_options.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <system_error>
#include <utility>

#include <arpa/inet.h>

#include <yaml-cpp/yaml.h>

namespace mpreg::config {
namespace {

// Upper bounds that keep later conversions (chrono, thread pools) sane.
constexpr double max_seconds = 365.0 * 24 * 3600; // one year
// Gossip, expiry and reconnect timers below this spin a core for nothing
// (1e-9 s gossip kept two idle nodes at 100 % of both cores).
constexpr double min_seconds = 0.01;
constexpr unsigned long long max_workers = 1024;
constexpr unsigned long long max_spin_us = 100000;
constexpr unsigned long long max_in_flight = 1000000;
constexpr std::size_t max_quoted = 100; // longest value echoed in an error

// ---------------------------------------------------------------- text helpers

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_control(char c) {
  auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back()))
    s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// 'value' for an error message: control characters escaped (the message
/// stays one line), long values cut.
std::string quote(std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "'";
  std::size_t n = 0;
  for (char c : s) {
    if (++n > max_quoted) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else if (is_control(c)) {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else
      out += c;
  }
  out += "'";
  return out;
}

/// One line, whatever a third party put into a message.
std::string one_line(std::string_view s) {
  std::string out;
  for (char c : s)
    out += is_control(c) ? ' ' : c;
  return std::string(trim(out));
}

/// Runs f; a config_error from it gets `prefix` in front of its reason.
template <class F>
auto with_prefix(const std::string& prefix, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const config_error& e) {
    throw config_error(prefix + e.what());
  }
}

// ------------------------------------------------------------- value checkers
// Each throws config_error with a reason and no prefix (the caller adds the
// flag or the config key).

std::optional<unsigned long long> parse_digits(std::string_view s) {
  unsigned long long v = 0;
  if (s.empty() || !std::isdigit(static_cast<unsigned char>(s.front())))
    return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size())
    return std::nullopt;
  return v;
}

// The range of each numeric setting, in one place: the parsers below read
// text into these, and checked_settings applies them to settings built in code.
// `shown` is the value as the user wrote it.

unsigned checked_port(std::optional<unsigned long long> v, std::string_view shown) {
  if (!v || *v > 65535)
    throw config_error(quote(shown) + " is not a port number (0..65535)");
  return static_cast<unsigned>(*v);
}

double checked_seconds(std::optional<double> v, std::string_view shown) {
  if (!v || !std::isfinite(*v))
    throw config_error(quote(shown) + " is not a number of seconds");
  if (!(*v >= min_seconds) || *v > max_seconds)
    throw config_error(quote(shown) + " is out of range (0.01 to " +
                       std::to_string(static_cast<long long>(max_seconds)) + " seconds)");
  return *v;
}

std::size_t checked_bytes(std::optional<unsigned long long> v, std::string_view shown) {
  if (!v || *v == 0 || *v > std::numeric_limits<std::size_t>::max())
    throw config_error(quote(shown) + " is not a positive whole number of bytes");
  return static_cast<std::size_t>(*v);
}

std::size_t checked_workers(std::optional<unsigned long long> v, std::string_view shown) {
  if (!v || *v > max_workers)
    throw config_error(quote(shown) + " is not a thread count (0.." +
                       std::to_string(max_workers) + "; 0 picks one)");
  return static_cast<std::size_t>(*v);
}

unsigned checked_spin(std::optional<unsigned long long> v, std::string_view shown) {
  if (!v || *v > max_spin_us)
    throw config_error(quote(shown) + " is not a number of microseconds (0.." +
                       std::to_string(max_spin_us) + ")");
  return static_cast<unsigned>(*v);
}

std::size_t checked_in_flight(std::optional<unsigned long long> v, std::string_view shown) {
  if (!v || *v == 0 || *v > max_in_flight)
    throw config_error(quote(shown) + " is not a number of requests (1.." +
                       std::to_string(max_in_flight) + ")");
  return static_cast<std::size_t>(*v);
}

unsigned parse_port(std::string_view s) { return checked_port(parse_digits(s), s); }

double parse_seconds(std::string_view s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    return checked_seconds(std::nullopt, s);
  return checked_seconds(v, s);
}

std::size_t parse_bytes(std::string_view s) { return checked_bytes(parse_digits(s), s); }

std::size_t parse_workers(std::string_view s) { return checked_workers(parse_digits(s), s); }

unsigned parse_spin(std::string_view s) { return checked_spin(parse_digits(s), s); }

std::size_t parse_in_flight(std::string_view s) {
  return checked_in_flight(parse_digits(s), s);
}

std::string check_host(std::string_view s) {
  if (s.empty())
    throw config_error("the host must not be empty");
  if (std::any_of(s.begin(), s.end(), [](char c) { return is_blank(c) || is_control(c); }))
    throw config_error(quote(s) + " is not a host (contains spaces or control characters)");
  return std::string(s);
}

std::string check_text(std::string_view s, const char* what) {
  if (s.empty())
    throw config_error(std::string(what) + " must not be empty");
  if (std::any_of(s.begin(), s.end(), is_control))
    throw config_error(quote(s) + " contains control characters");
  return std::string(s);
}

/// A log level name, case-insensitive, with MPREG/loguru spellings mapped.
std::optional<std::string> level_name(std::string_view s) {
  auto l = lower(trim(s));
  if (l == "error" || l == "critical")
    return std::string("error");
  if (l == "warn" || l == "warning")
    return std::string("warn");
  if (l == "info" || l == "debug" || l == "trace")
    return l;
  return std::nullopt;
}

std::string parse_level(std::string_view s) {
  if (auto l = level_name(s))
    return *l;
  throw config_error(quote(s) + " is not a log level (error|warn|info|debug|trace)");
}

void add_unique(std::vector<std::string>& v, std::string item) {
  if (std::find(v.begin(), v.end(), item) == v.end())
    v.push_back(std::move(item));
}

std::vector<std::string> url_list(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const auto& i : items)
    add_unique(out, normalize_url(i));
  return out;
}

std::vector<std::string> plain_list(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const auto& i : items)
    add_unique(out, i);
  return out;
}

// ------------------------------------------------------------------------ flags

enum class flag_id {
  config, host, port, name, cluster_id, resources, peers, connect, advertised_urls,
  gossip_interval, dead_peer_timeout, max_message_size, module, log_level, workers,
  io_spin_us, max_in_flight, help, version,
};

struct flag_spec {
  flag_id id;
  std::string_view long_name; ///< without the leading "--"
  char short_name;            ///< 0: none
  std::string_view metavar;   ///< empty: takes no value
  std::string_view help;
};

// The order is the order of --help.
constexpr flag_spec flag_table[] = {
  {flag_id::config, "config", 0, "FILE", "MPREG YAML settings file, read before all other flags"},
  {flag_id::host, "host", 0, "H", "address to bind"},
  {flag_id::port, "port", 0, "P", "port to bind, 0..65535; 0 picks a free one"},
  {flag_id::name, "name", 0, "N", "human-readable node name"},
  {flag_id::cluster_id, "cluster-id", 0, "ID", "cluster to join; nodes of other clusters are refused"},
  {flag_id::resources, "resources", 0, "a,b,...", "this node's resources"},
  {flag_id::peers, "peers", 0, "ws://h:p,...", "nodes to link to at start"},
  {flag_id::connect, "connect", 0, "ws://h:p", "one more node to link to at start"},
  {flag_id::advertised_urls, "advertised-urls", 0, "ws://h:p,...",
   "URLs other nodes use to reach this one"},
  {flag_id::gossip_interval, "gossip-interval", 0, "SECONDS", "seconds between gossip rounds, 0.01 or more"},
  {flag_id::dead_peer_timeout, "dead-peer-timeout", 0, "SECONDS",
   "seconds before a peer not heard of is forgotten, 0.01 or more"},
  {flag_id::max_message_size, "max-message-size", 0, "BYTES",
   "largest frame or result in bytes, > 0"},
  {flag_id::module, "module", 0, "PATH", "load a function module; repeatable, loaded in order"},
  {flag_id::log_level, "log-level", 0, "LEVEL", "log level on stderr: error|warn|info|debug|trace"},
  {flag_id::workers, "workers", 0, "N", "function worker threads, 0..1024; 0 = 2 x hardware threads, at least 4"},
  {flag_id::io_spin_us, "io-spin-us", 0, "MICROSECONDS",
   "how long the I/O loop polls after work before it sleeps, 0..100000 (adapts: up to 4 x "
   "as long while the gaps between its work are that short, none while longer); 0 never polls"},
  {flag_id::max_in_flight, "max-in-flight", 0, "N",
   "requests one connection may have waiting on functions or peers, 1..1000000; "
   "more wait in the node, and past twice as many it is not read for a while; "
   "a peer's forwarded calls past twice as many are refused as busy (1008)"},
  {flag_id::help, "help", 'h', "", "print this help and exit"},
  {flag_id::version, "version", 'V', "", "print the version and exit"},
};

const flag_spec* find_long(std::string_view name) {
  for (const auto& f : flag_table)
    if (f.long_name == name)
      return &f;
  return nullptr;
}

const flag_spec* find_short(char c) {
  for (const auto& f : flag_table)
    if (f.short_name != 0 && f.short_name == c)
      return &f;
  return nullptr;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

[[noreturn]] void unknown_option(std::string_view arg) {
  std::string name(arg.substr(0, arg.find('=')));
  std::string bare = lower(name.substr(name.find_first_not_of('-') == std::string::npos
                                         ? name.size()
                                         : name.find_first_not_of('-')));
  const flag_spec* best = nullptr;
  std::size_t best_d = 3;
  for (const auto& f : flag_table) {
    auto d = edit_distance(bare, f.long_name);
    if (d < best_d && d < bare.size()) {
      best = &f;
      best_d = d;
    }
  }
  std::string msg = "unknown option " + quote(name);
  if (best)
    msg += " (did you mean --" + std::string(best->long_name) + "?)";
  throw config_error(msg);
}

bool looks_like_flag(std::string_view s) {
  return s.rfind("--", 0) == 0 || (s.size() == 2 && s[0] == '-' && find_short(s[1]));
}

struct occurrence {
  const flag_spec* spec;
  std::string shown; ///< the flag as written, without "=value"
  std::string value;
};

/// Which list flags the command line has already set (the first one replaces
/// the file's list, later ones add to it).
struct list_state {
  bool resources = false, peers = false, advertised_urls = false;
};

void set_list(std::vector<std::string>& target, std::vector<std::string> items, bool& seen) {
  if (!seen)
    target.clear();
  seen = true;
  for (auto& i : items)
    add_unique(target, std::move(i));
}

void apply_flag(node_options& o, const occurrence& oc, list_state& st) {
  const std::string& v = oc.value;
  auto& s = o.node;
  with_prefix(oc.shown + ": ", [&] {
    switch (oc.spec->id) {
    case flag_id::config:
      if (v.empty())
        throw config_error("needs a file name");
      break; // applied separately, before the other flags
    case flag_id::host: s.host = check_host(v); break;
    case flag_id::port: s.port = parse_port(v); break;
    case flag_id::name: s.name = check_text(v, "the name"); break;
    case flag_id::cluster_id: s.cluster_id = check_text(v, "the cluster id"); break;
    case flag_id::resources: set_list(s.resources, split_list(v), st.resources); break;
    case flag_id::peers: set_list(s.peers, url_list(split_list(v)), st.peers); break;
    case flag_id::connect: s.connect = trim(v).empty() ? std::string() : normalize_url(v); break;
    case flag_id::advertised_urls:
      set_list(s.advertised_urls, url_list(split_list(v)), st.advertised_urls);
      break;
    case flag_id::gossip_interval: s.gossip_interval = parse_seconds(v); break;
    case flag_id::dead_peer_timeout: s.dead_peer_timeout = parse_seconds(v); break;
    case flag_id::max_message_size: s.max_message_size = parse_bytes(v); break;
    case flag_id::module:
      if (v.empty())
        throw config_error("needs a path");
      o.modules.push_back(v);
      break;
    case flag_id::log_level: o.log_level = parse_level(v); break;
    case flag_id::workers: s.worker_threads = parse_workers(v); break;
    case flag_id::io_spin_us: s.io_spin_us = parse_spin(v); break;
    case flag_id::max_in_flight: s.max_in_flight = parse_in_flight(v); break;
    case flag_id::help: o.show_help = true; break;
    case flag_id::version: o.show_version = true; break;
    }
  });
}

// ------------------------------------------------------------------------- YAML

YAML::Node load_yaml(const std::string& path) {
  const std::string where = "config file " + quote(path);
  std::error_code fec;
  if (std::filesystem::is_directory(path, fec))
    throw config_error("cannot read " + where + ": it is a directory");
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int e = errno;
    throw config_error("cannot read " + where + ": " +
                       (e != 0 ? std::string(std::strerror(e)) : std::string("cannot open it")));
  }
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad())
    throw config_error("cannot read " + where + ": read error");
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    std::string msg = where + ": not valid YAML: " + one_line(e.msg);
    if (!e.mark.is_null())
      msg += " (line " + std::to_string(e.mark.line + 1) + ", column " +
             std::to_string(e.mark.column + 1) + ")";
    throw config_error(msg);
  }
  if (root.IsNull())
    return root; // an empty file: nothing to apply
  if (!root.IsMap())
    throw config_error(where + ": expected a map of settings (key: value lines), got " +
                       (root.IsSequence() ? "a list" : "a single value"));
  return root;
}

const char* kind(const YAML::Node& n) {
  if (n.IsSequence())
    return "a list";
  if (n.IsMap())
    return "a map";
  return "a single value";
}

std::string scalar(const YAML::Node& n, const char* expected) {
  if (!n.IsScalar())
    throw config_error(std::string("expected ") + expected + ", got " + kind(n));
  return n.Scalar();
}

/// A YAML list of single values (null items skipped), a set (`!!set {a, b}`
/// or `? a` lines: a map whose values are all null, as Python's YAML writes a
/// set), a comma-separated string, or one string: trimmed, empty items
/// dropped.
std::vector<std::string> yaml_list(const YAML::Node& n) {
  if (n.IsScalar())
    return split_list(n.Scalar());
  std::vector<std::string> out;
  if (n.IsMap()) {
    for (const auto& kv : n) {
      if (!kv.second.IsNull() || !kv.first.IsScalar())
        throw config_error("expected a list, a set or a comma-separated string, got a map with "
                           "values");
      auto t = trim(kv.first.Scalar());
      if (!t.empty())
        out.emplace_back(t);
    }
    return out;
  }
  if (!n.IsSequence())
    throw config_error(std::string("expected a list or a comma-separated string, got ") + kind(n));
  for (const auto& item : n) {
    if (item.IsNull())
      continue;
    if (!item.IsScalar())
      throw config_error(std::string("expected a list of strings, got an item that is ") + kind(item));
    auto t = trim(item.Scalar());
    if (!t.empty())
      out.emplace_back(t);
  }
  return out;
}

/// Applies the map onto copies; the caller assigns them when all went well.
void apply_map(const YAML::Node& root, const std::string& path, settings& s,
               std::string* log_level) {
  if (root.IsNull())
    return;
  for (const auto& kv : root) {
    if (!kv.first.IsScalar())
      continue; // not a key of ours
    const std::string key = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    if (!v.IsDefined() || v.IsNull())
      continue;
    with_prefix("config file " + quote(path) + ": key " + quote(key) + ": ", [&] {
      if (key == "host")
        s.host = check_host(scalar(v, "a host"));
      else if (key == "port")
        s.port = parse_port(scalar(v, "a port number"));
      else if (key == "name")
        s.name = check_text(scalar(v, "a name"), "the name");
      else if (key == "cluster_id")
        s.cluster_id = check_text(scalar(v, "a cluster id"), "the cluster id");
      else if (key == "resources")
        s.resources = plain_list(yaml_list(v));
      else if (key == "peers")
        s.peers = url_list(yaml_list(v));
      else if (key == "connect") {
        auto u = scalar(v, "a ws:// URL");
        s.connect = trim(u).empty() ? std::string() : normalize_url(u);
      } else if (key == "advertised_urls")
        s.advertised_urls = url_list(yaml_list(v));
      else if (key == "gossip_interval")
        s.gossip_interval = parse_seconds(scalar(v, "a number of seconds"));
      else if (key == "dead_peer_timeout")
        s.dead_peer_timeout = parse_seconds(scalar(v, "a number of seconds"));
      else if (key == "reconnect_max_backoff")
        s.reconnect_max_backoff = parse_seconds(scalar(v, "a number of seconds"));
      else if (key == "max_message_size")
        s.max_message_size = parse_bytes(scalar(v, "a number of bytes"));
      else if (key == "workers")
        s.worker_threads = parse_workers(scalar(v, "a thread count"));
      else if (key == "io_spin_us")
        s.io_spin_us = parse_spin(scalar(v, "a number of microseconds"));
      else if (key == "max_in_flight")
        s.max_in_flight = parse_in_flight(scalar(v, "a number of requests"));
      else if (key == "log_level" && log_level && v.IsScalar()) {
        // MPREG's own key: taken when it names a level we know, else ignored
        // (MPREG files must keep working unchanged).
        if (auto l = level_name(v.Scalar()))
          *log_level = *l;
      }
      // any other key: ignored, as MPREG did
    });
  }
}

std::string format_seconds(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string s = ec == std::errc() ? std::string(buf, end) : std::to_string(v);
  if (s.find_first_of(".e") == std::string::npos)
    s += ".0";
  return s;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& i : v)
    out += (out.empty() ? "" : ",") + i;
  return out;
}

} // namespace

// ------------------------------------------------------------------ public API

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    auto end = comma == std::string_view::npos ? text.size() : comma;
    auto item = trim(text.substr(start, end - start));
    if (!item.empty())
      out.emplace_back(item);
    if (comma == std::string_view::npos)
      break;
    start = comma + 1;
  }
  return out;
}

namespace {
// One spelling per address, as the resolver reads it: "127.0.01" and
// "127.1" are 127.0.0.1 (inet_aton), "[0:0::1]" is "[::1]". Names are
// only lower-cased: resolving them here would tie a URL to today's DNS.
std::string canonical_host(std::string_view host) {
  std::string h = lower(host);
  if (h.front() == '[') {
    std::string inner = h.substr(1, h.size() - 2);
    in6_addr a6{};
    char text[INET6_ADDRSTRLEN];
    if (inner.find('%') == std::string::npos && inet_pton(AF_INET6, inner.c_str(), &a6) == 1 &&
        inet_ntop(AF_INET6, &a6, text, sizeof text))
      return "[" + std::string(text) + "]";
    return h;
  }
  in_addr a4{};
  char text[INET_ADDRSTRLEN];
  if (std::all_of(h.begin(), h.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; }) &&
      inet_aton(h.c_str(), &a4) != 0 && inet_ntop(AF_INET, &a4, text, sizeof text))
    return text;
  return h;
}
} // namespace

std::string listen_url(std::string_view host, unsigned port) {
  std::string h(trim(host));
  if (h.find(':') != std::string::npos && h.front() != '[')
    h = "[" + h + "]"; // an IPv6 address
  return normalize_url("ws://" + h + ":" + std::to_string(port));
}

url_parts parse_url(std::string_view url) {
  auto fail = [&](const std::string& why) {
    throw config_error("bad URL " + quote(url) + ": " + why + " (expected ws://HOST:PORT)");
  };
  auto u = trim(url);
  if (u.empty())
    fail("it is empty");
  if (std::any_of(u.begin(), u.end(), [](char c) { return is_blank(c) || is_control(c); }))
    fail("it contains spaces or control characters");
  auto sep = u.find("://");
  if (sep == std::string_view::npos)
    fail("it does not start with ws:// or wss://");
  std::string scheme = lower(u.substr(0, sep));
  if (scheme != "ws" && scheme != "wss")
    fail("the scheme must be ws:// or wss://");
  auto rest = u.substr(sep + 3);
  while (!rest.empty() && rest.back() == '/')
    rest.remove_suffix(1);
  auto auth_end = rest.find_first_of("/?#");
  auto authority = rest.substr(0, auth_end);
  std::string_view tail = auth_end == std::string_view::npos ? std::string_view() : rest.substr(auth_end);
  if (authority.empty())
    fail("it has no host");
  if (authority.find('@') != std::string_view::npos)
    fail("user names in URLs are not supported");

  std::string_view host, port;
  bool has_port = false;
  if (authority.front() == '[') { // IPv6 literal
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      fail("the IPv6 address has no closing ']'");
    host = authority.substr(0, close + 1);
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        fail("unexpected text after the IPv6 address");
      port = after.substr(1);
      has_port = true;
    }
    auto inner = host.substr(1, host.size() - 2);
    if (inner.empty() || !std::all_of(inner.begin(), inner.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.' || c == '%' ||
                 std::isalnum(static_cast<unsigned char>(c));
        }))
      fail("the IPv6 address is malformed");
  } else {
    auto colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      has_port = true;
    }
    if (!std::all_of(host.begin(), host.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
                 c == '~' || c == '%';
        }))
      fail("the host name has characters a host name cannot have");
  }
  if (host.empty())
    fail("it has no host");
  url_parts parts{scheme, canonical_host(host), "", std::string(tail)};
  if (has_port) {
    auto p = parse_digits(port);
    if (!p || *p == 0 || *p > 65535)
      fail("the port must be a number 1..65535");
    parts.port = std::to_string(*p);
  }
  return parts;
}

std::string url_parts::str() const {
  return scheme + "://" + host + (port.empty() ? "" : ":" + port) + path;
}

std::string normalize_url(std::string_view url) {
  return parse_url(url).str();
}

void apply_yaml_config(const std::string& path, mpreg::settings& s) {
  auto root = load_yaml(path);
  settings copy = s;
  apply_map(root, path, copy, nullptr);
  s = std::move(copy);
}

void apply_yaml_config(const std::string& path, node_options& o) {
  auto root = load_yaml(path);
  settings copy = o.node;
  std::string level = o.log_level;
  apply_map(root, path, copy, &level);
  o.node = std::move(copy);
  o.log_level = std::move(level);
}

node_options parse_node_args(int argc, const char* const* argv) {
  // 1. Read argv: names and values, no meaning yet.
  std::vector<occurrence> occ;
  bool help = false, version = false;
  for (int i = 1; argv && i < argc; ++i) {
    std::string_view a = argv[i] ? argv[i] : "";
    const flag_spec* spec = nullptr;
    std::string shown, value;
    bool has_value = false;
    if (a.size() > 2 && a.substr(0, 2) == "--") {
      auto eq = a.find('=');
      spec = find_long(a.substr(2, eq == std::string_view::npos ? eq : eq - 2));
      if (!spec)
        unknown_option(a);
      shown = "--" + std::string(spec->long_name);
      if (eq != std::string_view::npos) {
        value = std::string(a.substr(eq + 1));
        has_value = true;
      }
    } else if (a.size() == 2 && a[0] == '-' && a[1] != '-') {
      spec = find_short(a[1]);
      if (!spec)
        unknown_option(a);
      shown = std::string(a);
    } else if (a.size() > 1 && a[0] == '-' && a != "--") {
      unknown_option(a);
    } else {
      throw config_error("unexpected argument " + quote(a) + " (every setting is a --flag)");
    }
    if (spec->metavar.empty()) {
      if (has_value)
        throw config_error("option " + shown + " takes no value");
      help = help || spec->id == flag_id::help;
      version = version || spec->id == flag_id::version;
    } else if (!has_value) {
      if (i + 1 >= argc || !argv[i + 1] || looks_like_flag(argv[i + 1]))
        throw config_error("option " + shown + " needs a value (" + shown + " " +
                           std::string(spec->metavar) + ")");
      value = argv[++i];
    }
    occ.push_back({spec, std::move(shown), std::move(value)});
  }

  node_options o;
  if (help || version) {
    o.show_help = help;
    o.show_version = version;
    return o;
  }

  // 2. Check every value, in argv order, before touching any file.
  {
    node_options scratch;
    list_state st;
    for (const auto& oc : occ)
      apply_flag(scratch, oc, st);
  }

  // 3. Config files first, wherever they appear; then the flags over them.
  for (const auto& oc : occ)
    if (oc.spec->id == flag_id::config)
      apply_yaml_config(oc.value, o);
  list_state st;
  for (const auto& oc : occ)
    apply_flag(o, oc, st);
  return o;
}

std::string node_usage() {
  const settings d;
  auto default_of = [&](flag_id id) -> std::string {
    switch (id) {
    case flag_id::config: return "none";
    case flag_id::host: return d.host;
    case flag_id::port: return std::to_string(d.port);
    case flag_id::name: return d.name;
    case flag_id::cluster_id: return d.cluster_id;
    case flag_id::resources: return d.resources.empty() ? "none" : join(d.resources);
    case flag_id::peers: return d.peers.empty() ? "none" : join(d.peers);
    case flag_id::connect: return d.connect.empty() ? "none" : d.connect;
    case flag_id::advertised_urls: return "ws://HOST:PORT, the bound address";
    case flag_id::gossip_interval: return format_seconds(d.gossip_interval);
    case flag_id::dead_peer_timeout: return format_seconds(d.dead_peer_timeout);
    case flag_id::max_message_size:
      return std::to_string(d.max_message_size) +
             (d.max_message_size % (1u << 20) == 0
                ? " = " + std::to_string(d.max_message_size >> 20) + " MiB"
                : std::string());
    case flag_id::module: return "none";
    case flag_id::log_level: return node_options{}.log_level;
    case flag_id::workers: return std::to_string(d.worker_threads);
    case flag_id::io_spin_us: return std::to_string(d.io_spin_us);
    case flag_id::max_in_flight: return std::to_string(d.max_in_flight);
    case flag_id::help:
    case flag_id::version: return {};
    }
    return {};
  };

  std::ostringstream out;
  out << "Usage: mpreg-node [OPTIONS]\n"
         "\n"
         "Runs one MPREG node: serves RPC requests over WebSocket and joins a cluster.\n"
         "Prints one line, 'mpreg-node listening on ws://HOST:PORT', to stdout when it\n"
         "accepts connections; logs go to stderr. SIGINT/SIGTERM stop it cleanly.\n"
         "\n"
         "Options (each also as --option=VALUE; lists are comma-separated):\n";
  std::size_t width = 0;
  auto left = [](const flag_spec& f) {
    std::string l = f.short_name ? std::string("-") + f.short_name + ", " : std::string();
    l += "--" + std::string(f.long_name);
    if (!f.metavar.empty())
      l += " " + std::string(f.metavar);
    return l;
  };
  for (const auto& f : flag_table)
    width = std::max(width, left(f).size());
  for (const auto& f : flag_table) {
    auto l = left(f);
    out << "  " << l << std::string(width - l.size() + 2, ' ') << f.help;
    auto def = default_of(f.id);
    if (!def.empty())
      out << " (default: " << def << ")";
    out << '\n';
  }
  out << "\n"
         "--config reads MPREG's YAML settings files (host, port, name, resources, peers,\n"
         "connect, cluster_id, advertised_urls, gossip_interval, ...); unknown keys and\n"
         "null values are ignored. Flags override the file, wherever --config appears.\n"
         "\n"
         "Example:\n"
         "  mpreg-node --config server1.yaml --port 9001 --name \"Server 1\" \\\n"
         "             --resources model-a,dataset-1 --peers ws://127.0.0.1:9002\n";
  return out.str();
}

mpreg::settings checked_settings(mpreg::settings s) {
  auto field = [](const char* name, auto&& check) {
    with_prefix(std::string("settings.") + name + ": ", check);
  };
  auto seconds = [](double v) {
    std::ostringstream shown;
    shown << v;
    checked_seconds(v, shown.str());
  };
  field("host", [&] { check_host(s.host); });
  field("port", [&] { checked_port(s.port, std::to_string(s.port)); });
  field("name", [&] { check_text(s.name, "the name"); });
  field("cluster_id", [&] { check_text(s.cluster_id, "the cluster id"); });
  for (auto& u : s.peers)
    field("peers", [&] { u = normalize_url(u); });
  if (trim(s.connect).empty())
    s.connect.clear(); // blank: none
  else
    field("connect", [&] { s.connect = normalize_url(s.connect); });
  for (auto& u : s.advertised_urls)
    field("advertised_urls", [&] { u = normalize_url(u); });
  field("gossip_interval", [&] { seconds(s.gossip_interval); });
  field("dead_peer_timeout", [&] { seconds(s.dead_peer_timeout); });
  field("reconnect_max_backoff", [&] { seconds(s.reconnect_max_backoff); });
  field("max_message_size",
        [&] { checked_bytes(s.max_message_size, std::to_string(s.max_message_size)); });
  field("worker_threads",
        [&] { checked_workers(s.worker_threads, std::to_string(s.worker_threads)); });
  field("io_spin_us", [&] { checked_spin(s.io_spin_us, std::to_string(s.io_spin_us)); });
  field("max_in_flight",
        [&] { checked_in_flight(s.max_in_flight, std::to_string(s.max_in_flight)); });
  return s;
}

} // namespace mpreg::config
