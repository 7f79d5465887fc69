// The command line and config-file front end of `mpreg-node` (PROTOCOL.md,
// "Node settings" and "The `mpreg-node` command line").
//
// Plain library code: no CAF, no websocketpp. CAF never sees our argv
// (STACK-NOTES.md); the tool parses it here and builds its actor_system_config
// from the result.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mpreg/settings.hpp"

namespace mpreg::config {

/// A bad command line or config file. what() is ONE line, a human reason
/// without the program name (the tool prints "mpreg-node: <what>" to stderr
/// and exits non-zero).
class config_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Everything the command line says.
struct node_options {
  mpreg::settings node;             ///< the node's settings (config file, then flags)
  std::vector<std::string> modules; ///< --module PATH (repeatable), in order
  std::string log_level = "info";   ///< error|warn|info|debug|trace (always lower case)
  bool show_help = false;           ///< -h/--help given: print node_usage(), exit 0
  bool show_version = false;        ///< -V/--version given: print the version, exit 0
};

/// Parses argv (argv[0] is skipped). Both `--flag value` and `--flag=value`.
///
/// Order of work: the whole argv is read first (unknown flag, missing value
/// and bad values throw, in argv order); then every `--config FILE` is applied
/// in argv order, wherever it appears; then the other flags in argv order, so
/// every flag overrides the files. A repeated scalar flag: the last one wins.
/// List flags (--resources, --peers, --advertised-urls) replace the file's
/// list; repeating one on the command line adds to it.
///
/// With -h/--help or -V/--version the flags are still checked for unknown
/// names and missing values, but values are not checked and no config file is
/// read: the result has show_help/show_version set and default settings.
///
/// Throws config_error with a one-line reason.
node_options parse_node_args(int argc, const char* const* argv);

/// Applies one of MPREG's YAML settings files onto `s`: a flat map with keys
/// host, port, name, resources, peers, connect, cluster_id, advertised_urls,
/// gossip_interval, plus our own dead_peer_timeout, max_message_size,
/// reconnect_max_backoff and workers (-> worker_threads). Unknown keys and
/// `null` values are ignored; an empty file changes nothing. List keys take a
/// YAML list, a comma-separated string or a single string. URLs are checked
/// and normalised like the flags' (normalize_url).
///
/// Throws config_error (naming the path, and the key for a wrong type or bad
/// value) if the file is unreadable, not YAML, or not a map. On error `s` is
/// left unchanged.
void apply_yaml_config(const std::string& path, mpreg::settings& s);

/// Same, and also takes MPREG's `log_level` key (INFO, DEBUG, WARNING, ...;
/// case-insensitive) into o.log_level when it names a level we know; other
/// values of that key are ignored. Used by parse_node_args for --config.
void apply_yaml_config(const std::string& path, node_options& o);

/// The --help text: every flag with its default and a one-line description,
/// plus an example. Ends with a newline.
std::string node_usage();

/// Checks a ws:// or wss:// URL and returns its normal form: scheme and host
/// lower case, port without leading zeros, trailing '/' removed, IP
/// addresses in one spelling ("127.0.01" -> "127.0.0.1", "[0::1]" ->
/// "[::1]"), e.g. " WS://LocalHost:09001/ " -> "ws://localhost:9001". A port is optional;
/// a path after the authority is kept. Throws config_error on anything else.
std::string normalize_url(std::string_view url);

/// A URL in normal form, in pieces: normalize_url(u) == parse_url(u).str().
struct url_parts {
  std::string scheme; ///< "ws" or "wss"
  std::string host;   ///< lower case, an IP in one spelling, IPv6 in brackets
  std::string port;   ///< digits without leading zeros, or "" when none was given
  std::string path;   ///< what follows: "" or from its first '/', '?' or '#'; no trailing '/'
  std::string str() const;
};

/// Same checks as normalize_url (throws config_error), the result in pieces.
url_parts parse_url(std::string_view url);

/// Checks settings built in code (an embedded node's) against the ranges the
/// command line and config files accept, and returns them with URLs in
/// normal form as the command line keeps them (a blank connect is none):
/// port 0..65535, times 0.01 s to a year, sizes and
/// counts in range, URLs that normalize_url takes, host/name/cluster id not
/// empty. Throws config_error naming the field ("settings.port: ...").
mpreg::settings checked_settings(mpreg::settings s);

/// The URL of a listener bound to host:port (port 1..65535): an IPv6
/// address gets its brackets ("::1" -> "ws://[::1]:P"), then normalize_url.
std::string listen_url(std::string_view host, unsigned port);

/// Splits a comma-separated list: items trimmed of spaces/tabs, empty items
/// dropped. "a, b,,c " -> {"a", "b", "c"}.
std::vector<std::string> split_list(std::string_view text);

} // namespace mpreg::config
