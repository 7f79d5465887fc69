#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include <unistd.h>

#include "config/node_options.hpp"

#ifndef MPREG_TEST_DATA
#error "MPREG_TEST_DATA must be defined (tests/meson.build)"
#endif

using namespace mpreg;
using namespace mpreg::config;
using strings = std::vector<std::string>;

namespace {

const std::string data_dir = MPREG_TEST_DATA;
const std::string mpreg_file = data_dir + "/mpreg-settings.yaml";
const std::string variant_file = data_dir + "/mpreg-settings-variant.yaml";

node_options parse(std::initializer_list<std::string> args) {
  std::vector<std::string> keep{"mpreg-node"};
  keep.insert(keep.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const auto& a : keep)
    argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return parse_node_args(static_cast<int>(keep.size()), argv.data());
}

/// The config_error parsing throws; fails the test if none.
std::string error_of(std::initializer_list<std::string> args) {
  try {
    parse(args);
  } catch (const config_error& e) {
    std::string what = e.what();
    CHECK(what.find('\n') == std::string::npos); // one line
    CHECK(!what.empty());
    return what;
  }
  FAIL("no config_error");
  return {};
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

/// A YAML file in a private temp directory, removed at scope exit.
struct temp_yaml {
  std::filesystem::path path;
  explicit temp_yaml(const std::string& text) {
    static std::atomic<int> n{0};
    auto dir = std::filesystem::temp_directory_path() /
               ("mpreg-node-options-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    path = dir / ("cfg" + std::to_string(n++) + ".yaml");
    std::ofstream(path) << text;
  }
  ~temp_yaml() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    std::filesystem::remove(path.parent_path(), ec); // only when empty
  }
  std::string str() const { return path.string(); }
};

std::string yaml_error(const std::string& text) {
  temp_yaml f(text);
  settings s;
  try {
    apply_yaml_config(f.str(), s);
  } catch (const config_error& e) {
    std::string what = e.what();
    CHECK(what.find('\n') == std::string::npos);
    CHECK(contains(what, f.str()));
    return what;
  }
  FAIL("no config_error for: " << text);
  return {};
}

settings yaml(const std::string& text) {
  temp_yaml f(text);
  settings s;
  apply_yaml_config(f.str(), s);
  return s;
}

} // namespace

TEST_CASE("no arguments: MPREG's defaults") {
  auto o = parse({});
  const settings d;
  CHECK(o.node.host == "127.0.0.1");
  CHECK(o.node.port == 6666);
  CHECK(o.node.name == d.name);
  CHECK(o.node.cluster_id == "default-cluster");
  CHECK(o.node.resources.empty());
  CHECK(o.node.peers.empty());
  CHECK(o.node.connect.empty());
  CHECK(o.node.advertised_urls.empty());
  CHECK(o.node.gossip_interval == 5.0);
  CHECK(o.node.dead_peer_timeout == d.dead_peer_timeout);
  CHECK(o.node.max_message_size == d.max_message_size);
  CHECK(o.node.worker_threads == d.worker_threads);
  CHECK(o.modules.empty());
  CHECK(o.log_level == "info");
  CHECK_FALSE(o.show_help);
  CHECK_FALSE(o.show_version);
  // argc 0 / null argv do not crash
  CHECK(parse_node_args(0, nullptr).node.port == 6666);
}

TEST_CASE("every flag, as --flag value and as --flag=value") {
  for (bool eq : {false, true}) {
    CAPTURE(eq);
    std::vector<std::pair<std::string, std::string>> flags = {
      {"--host", "0.0.0.0"},
      {"--port", "9001"},
      {"--name", "Server 1"},
      {"--cluster-id", "prod-cluster"},
      {"--resources", "model-a,dataset-1"},
      {"--peers", "ws://127.0.0.1:9002,ws://127.0.0.1:9003"},
      {"--connect", "ws://127.0.0.1:9004"},
      {"--advertised-urls", "ws://10.0.0.5:9001"},
      {"--gossip-interval", "0.25"},
      {"--dead-peer-timeout", "3"},
      {"--max-message-size", "1048576"},
      {"--module", "/opt/a.so"},
      {"--module", "/opt/b.so"},
      {"--log-level", "debug"},
      {"--workers", "8"},
    };
    std::vector<std::string> keep{"mpreg-node"};
    for (auto& [f, v] : flags) {
      if (eq) {
        keep.push_back(f + "=" + v);
      } else {
        keep.push_back(f);
        keep.push_back(v);
      }
    }
    std::vector<const char*> argv;
    for (auto& a : keep)
      argv.push_back(a.c_str());
    auto o = parse_node_args(static_cast<int>(argv.size()), argv.data());
    CHECK(o.node.host == "0.0.0.0");
    CHECK(o.node.port == 9001);
    CHECK(o.node.name == "Server 1");
    CHECK(o.node.cluster_id == "prod-cluster");
    CHECK(o.node.resources == strings{"model-a", "dataset-1"});
    CHECK(o.node.peers == strings{"ws://127.0.0.1:9002", "ws://127.0.0.1:9003"});
    CHECK(o.node.connect == "ws://127.0.0.1:9004");
    CHECK(o.node.advertised_urls == strings{"ws://10.0.0.5:9001"});
    CHECK(o.node.gossip_interval == 0.25);
    CHECK(o.node.dead_peer_timeout == 3.0);
    CHECK(o.node.max_message_size == 1048576u);
    CHECK(o.modules == strings{"/opt/a.so", "/opt/b.so"});
    CHECK(o.log_level == "debug");
    CHECK(o.node.worker_threads == 8u);
    CHECK_FALSE(o.show_help);
  }
}

TEST_CASE("help and version") {
  CHECK(parse({"--help"}).show_help);
  CHECK(parse({"-h"}).show_help);
  CHECK(parse({"--version"}).show_version);
  CHECK(parse({"-V"}).show_version);
  CHECK_FALSE(parse({"-V"}).show_help);
  // help wins over bad values and unreadable files, not over unknown flags
  CHECK(parse({"--port", "abc", "--config", "/nonexistent.yaml", "--help"}).show_help);
  CHECK(contains(error_of({"--help", "--bogus"}), "--bogus"));
  CHECK(contains(error_of({"--help=yes"}), "takes no value"));
  CHECK(contains(error_of({"--version=1"}), "takes no value"));
}

TEST_CASE("the help text lists every flag with a default, and an example") {
  auto h = node_usage();
  for (const char* f : {"--config FILE", "--host H", "--port P", "--name N", "--cluster-id ID",
                        "--resources a,b,...", "--peers ws://h:p,...", "--connect ws://h:p",
                        "--advertised-urls ws://h:p,...", "--gossip-interval SECONDS",
                        "--dead-peer-timeout SECONDS", "--max-message-size BYTES", "--module PATH",
                        "--log-level LEVEL", "--workers N", "--io-spin-us MICROSECONDS",
                        "--max-in-flight N", "-h, --help", "-V, --version"}) {
    CAPTURE(f);
    CHECK(contains(h, f));
  }
  CHECK(contains(h, "(default: 127.0.0.1)"));
  CHECK(contains(h, "(default: 6666)"));
  CHECK(contains(h, "(default: default-cluster)"));
  CHECK(contains(h, "(default: 5.0)"));
  CHECK(contains(h, "(default: 30.0)"));
  CHECK(contains(h, "(default: info)"));
  CHECK(contains(h, "(default: 67108864 = 64 MiB)"));
  CHECK(contains(h, "Example:"));
  CHECK(h.back() == '\n');
  // every option line has a default
  std::size_t option_lines = 0;
  std::size_t pos = 0;
  while ((pos = h.find("\n  -", pos)) != std::string::npos) {
    auto end = h.find('\n', pos + 1);
    auto line = h.substr(pos + 1, end - pos - 1);
    ++option_lines;
    if (!contains(line, "--help") && !contains(line, "--version")) {
      CAPTURE(line);
      CHECK(contains(line, "(default: "));
    }
    pos = end;
  }
  CHECK(option_lines == 19);
}

TEST_CASE("unknown flags and stray arguments") {
  CHECK(error_of({"--bogus"}) == "unknown option '--bogus'");
  CHECK(error_of({"--prot", "9000"}) == "unknown option '--prot' (did you mean --port?)");
  CHECK(error_of({"--cluster_id=x"}) == "unknown option '--cluster_id' (did you mean --cluster-id?)");
  CHECK(contains(error_of({"-p", "9000"}), "unknown option '-p'"));
  CHECK(contains(error_of({"-hV"}), "unknown option '-hV'"));
  CHECK(contains(error_of({"9000"}), "unexpected argument '9000'"));
  CHECK(contains(error_of({"--port", "1", "extra"}), "unexpected argument 'extra'"));
  CHECK(contains(error_of({"--"}), "unexpected argument '--'"));
  CHECK(contains(error_of({"-"}), "unexpected argument '-'"));
  CHECK(contains(error_of({"--Port=1"}), "unknown option '--Port'")); // names are case-sensitive
}

TEST_CASE("missing values") {
  CHECK(error_of({"--port"}) == "option --port needs a value (--port P)");
  CHECK(error_of({"--host", "--port", "1"}) == "option --host needs a value (--host H)");
  CHECK(contains(error_of({"--name", "-h"}), "--name needs a value"));
  CHECK(contains(error_of({"--config"}), "--config needs a value"));
  CHECK(contains(error_of({"--module"}), "--module needs a value"));
  CHECK(contains(error_of({"--config="}), "--config: needs a file name"));
  CHECK(contains(error_of({"--module="}), "--module: needs a path"));
  CHECK(contains(error_of({"--host="}), "--host:"));
  CHECK(contains(error_of({"--name="}), "--name:"));
  CHECK(contains(error_of({"--cluster-id="}), "--cluster-id:"));
  // a value may start with a single dash
  CHECK(parse({"--name", "-x-"}).node.name == "-x-");
  CHECK(parse({"--name=--odd"}).node.name == "--odd");
}

TEST_CASE("bad numbers") {
  CHECK(error_of({"--port", "abc"}) == "--port: 'abc' is not a port number (0..65535)");
  for (const char* p : {"65536", "-1", "+5", " 5", "5 ", "1.0", "0x10", "", "99999999999999999999999"}) {
    CAPTURE(p);
    CHECK(contains(error_of({std::string("--port=") + p}), "is not a port number"));
  }
  CHECK(parse({"--port", "0"}).node.port == 0);
  CHECK(parse({"--port", "65535"}).node.port == 65535);
  for (const char* flag : {"--gossip-interval", "--dead-peer-timeout"}) {
    CAPTURE(flag);
    for (const char* v : {"0", "-1", "abc", "5s", "", "inf", "nan", "1e400", "1e9", "1e-9", "0.009"}) {
      CAPTURE(v);
      CHECK(contains(error_of({flag, v}), std::string(flag) + ": "));
    }
    CHECK_NOTHROW(parse({flag, "0.01"}));
    CHECK_NOTHROW(parse({flag, "31536000"}));
  }
  CHECK(parse({"--gossip-interval", "2"}).node.gossip_interval == 2.0);
  CHECK(parse({"--gossip-interval", ".5"}).node.gossip_interval == 0.5);
  for (const char* v : {"0", "-5", "1.5", "abc", "1k", "", "99999999999999999999999"}) {
    CAPTURE(v);
    CHECK(contains(error_of({"--max-message-size", v}), "--max-message-size: "));
  }
  CHECK(parse({"--max-message-size", "1"}).node.max_message_size == 1u);
  for (const char* v : {"-1", "abc", "1025", "2.5"}) {
    CAPTURE(v);
    CHECK(contains(error_of({"--workers", v}), "--workers: "));
  }
  CHECK(parse({"--workers", "0"}).node.worker_threads == 0u);
  CHECK(parse({"--workers", "1024"}).node.worker_threads == 1024u);
  for (const char* v : {"-1", "abc", "100001", "2.5"}) {
    CAPTURE(v);
    CHECK(contains(error_of({"--io-spin-us", v}), "--io-spin-us: "));
  }
  CHECK(parse({}).node.io_spin_us == 50u);
  CHECK(parse({"--io-spin-us", "0"}).node.io_spin_us == 0u);
  CHECK(parse({"--io-spin-us", "100000"}).node.io_spin_us == 100000u);
  for (const char* v : {"0", "-1", "abc", "1000001", "2.5"}) {
    CAPTURE(v);
    CHECK(contains(error_of({"--max-in-flight", v}), "--max-in-flight: "));
  }
  CHECK(parse({}).node.max_in_flight == 256u);
  CHECK(parse({"--max-in-flight", "1"}).node.max_in_flight == 1u);
}

TEST_CASE("log levels") {
  for (const char* l : {"error", "warn", "info", "debug", "trace"})
    CHECK(parse({"--log-level", l}).log_level == l);
  CHECK(parse({"--log-level", "DEBUG"}).log_level == "debug");
  CHECK(parse({"--log-level=warning"}).log_level == "warn");
  CHECK(error_of({"--log-level", "loud"}) ==
        "--log-level: 'loud' is not a log level (error|warn|info|debug|trace)");
}

TEST_CASE("URLs: ws:// or wss://, trailing slash removed, normalised") {
  CHECK(normalize_url("ws://127.0.0.1:9001/") == "ws://127.0.0.1:9001");
  CHECK(normalize_url("ws://127.0.0.1:9001//") == "ws://127.0.0.1:9001");
  CHECK(normalize_url(" WS://LocalHost:09001/ ") == "ws://localhost:9001");
  CHECK(normalize_url("wss://example.org:443") == "wss://example.org:443");
  CHECK(normalize_url("ws://example.org") == "ws://example.org");
  CHECK(normalize_url("ws://[::1]:9001/") == "ws://[::1]:9001");
  CHECK(normalize_url("ws://h:1/mpreg/") == "ws://h:1/mpreg");
  // One spelling per IP address, as the resolver reads it (MPREG's own
  // dev-2.config.yaml says 127.0.01); names are not resolved.
  CHECK(normalize_url("ws://127.0.01:9001") == "ws://127.0.0.1:9001");
  CHECK(normalize_url("ws://127.1:9001") == "ws://127.0.0.1:9001");
  CHECK(normalize_url("ws://[0:0:0:0:0:0:0:1]:9001") == "ws://[::1]:9001");
  CHECK(normalize_url("ws://[FE80::1%25eth0]:9001") == "ws://[fe80::1%25eth0]:9001");
  CHECK(normalize_url("ws://10.0.0.300:1") == "ws://10.0.0.300:1"); // not an address: a name
  CHECK(listen_url("127.0.0.1", 6666) == "ws://127.0.0.1:6666");
  CHECK(listen_url("::1", 6666) == "ws://[::1]:6666");
  CHECK(listen_url("[::1]", 6666) == "ws://[::1]:6666");
  CHECK(listen_url("::", 1) == "ws://[::]:1");
  CHECK(listen_url("Node-A.example", 7) == "ws://node-a.example:7");
  for (const char* bad : {"", "127.0.0.1:9001", "http://h:1", "ws:/h:1", "ws://", "ws://:9001",
                          "ws://h:", "ws://h:0", "ws://h:65536", "ws://h:port", "ws://h h:1",
                          "ws://user@h:1", "ws://h,i:1", "ws://[::1:1", "ws://[::1]x"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(normalize_url(bad), config_error);
  }
  CHECK(error_of({"--connect", "http://h:1"}) ==
        "--connect: bad URL 'http://h:1': the scheme must be ws:// or wss:// (expected ws://HOST:PORT)");
  CHECK(contains(error_of({"--peers", "ws://a:1,localhost:2"}), "--peers: bad URL 'localhost:2'"));
  CHECK(contains(error_of({"--advertised-urls", "ws://a:99999"}), "--advertised-urls: bad URL"));
  CHECK(parse({"--connect", "ws://127.0.0.1:9001/"}).node.connect == "ws://127.0.0.1:9001");
  CHECK(parse({"--advertised-urls=ws://h:1/"}).node.advertised_urls == strings{"ws://h:1"});
}

TEST_CASE("comma lists: trimmed, empty items dropped, duplicates dropped") {
  CHECK(split_list("a, b,,c ") == strings{"a", "b", "c"});
  CHECK(split_list("") == strings{});
  CHECK(split_list(" , ,") == strings{});
  CHECK(split_list("model a ,\tb") == strings{"model a", "b"});
  auto o = parse({"--resources", " model-a , ,dataset-1,model-a,", "--peers",
                  "ws://h:1/ , ws://h:2,,ws://h:1"});
  CHECK(o.node.resources == strings{"model-a", "dataset-1"});
  CHECK(o.node.peers == strings{"ws://h:1", "ws://h:2"});
  CHECK(parse({"--resources="}).node.resources.empty());
  // repeated list flags add up; repeated scalar flags: the last wins
  auto r = parse({"--resources", "a", "--port", "1", "--resources", "b,a", "--port", "2"});
  CHECK(r.node.resources == strings{"a", "b"});
  CHECK(r.node.port == 2);
}

TEST_CASE("MPREG's own settings file") {
  settings s;
  apply_yaml_config(mpreg_file, s);
  CHECK(s.host == "127.0.0.1");
  CHECK(s.port == 9001);
  CHECK(s.name == "Server 1");
  CHECK(s.resources == strings{"model-a", "dataset-1"});
  CHECK(s.peers.empty());
  CHECK(s.connect.empty());
  CHECK(s.cluster_id == "prod-cluster");
  CHECK(s.advertised_urls.empty());
  CHECK(s.gossip_interval == 5.0);

  auto o = parse({"--config", mpreg_file});
  CHECK(o.node.port == 9001);
  CHECK(o.node.name == "Server 1");
  CHECK(o.log_level == "info"); // log_level: INFO
}

TEST_CASE("a settings file with nulls, unknown keys, comma strings and slashes") {
  settings s;
  s.cluster_id = "kept";
  s.advertised_urls = {"ws://kept:1"};
  apply_yaml_config(variant_file, s);
  CHECK(s.host == "0.0.0.0");
  CHECK(s.port == 9002);
  CHECK(s.name == "Server 2");
  CHECK(s.resources == strings{"model-b", "dataset-2"});
  CHECK(s.peers == strings{"ws://127.0.0.1:9001", "ws://127.0.0.1:9003"});
  CHECK(s.connect == "ws://127.0.0.1:9001");
  CHECK(s.cluster_id == "kept");                         // cluster_id: ~
  CHECK(s.advertised_urls == strings{"ws://kept:1"});    // advertised_urls: (empty = null)
  CHECK(s.gossip_interval == 2.0);
  CHECK(s.dead_peer_timeout == 12.5);
  CHECK(s.max_message_size == 1048576u);
  CHECK(parse({"--config", variant_file}).log_level == "debug");
}

TEST_CASE("resources as a YAML set, as Python's YAML writes one") {
  CHECK(yaml("resources: !!set {model-a, dataset-1}\n").resources ==
        strings{"model-a", "dataset-1"});
  CHECK(yaml("resources: !!set\n  ? gpu\n  ? model-a\n").resources == strings{"gpu", "model-a"});
  CHECK(yaml("peers: {ws://127.0.0.1:9001}\n").peers == strings{"ws://127.0.0.1:9001"});
  CHECK(contains(yaml_error("resources: {a: 1}\n"), "a map with values"));
}

TEST_CASE("flags override the file, and --config works anywhere in argv") {
  auto a = parse({"--port", "7000", "--config", mpreg_file, "--name", "mine"});
  auto b = parse({"--port=7000", "--name=mine", "--config=" + mpreg_file});
  auto c = parse({"--config", mpreg_file, "--port", "7000", "--name", "mine"});
  for (auto* o : {&a, &b, &c}) {
    CHECK(o->node.port == 7000);
    CHECK(o->node.name == "mine");
    CHECK(o->node.cluster_id == "prod-cluster"); // from the file
    CHECK(o->node.resources == strings{"model-a", "dataset-1"});
  }
  // a list flag replaces the file's list
  auto d = parse({"--resources", "x", "--config", mpreg_file});
  CHECK(d.node.resources == strings{"x"});
  // every settings flag overrides
  auto e = parse({"--host", "10.0.0.1", "--cluster-id", "c", "--gossip-interval", "1", "--config",
                  variant_file, "--peers", "ws://p:1", "--connect=", "--dead-peer-timeout", "4",
                  "--max-message-size", "99", "--log-level", "error", "--advertised-urls", "ws://me:5"});
  CHECK(e.node.host == "10.0.0.1");
  CHECK(e.node.cluster_id == "c");
  CHECK(e.node.gossip_interval == 1.0);
  CHECK(e.node.peers == strings{"ws://p:1"});
  CHECK(e.node.connect.empty()); // --connect= clears the file's
  CHECK(e.node.dead_peer_timeout == 4.0);
  CHECK(e.node.max_message_size == 99u);
  CHECK(e.log_level == "error");
  CHECK(e.node.advertised_urls == strings{"ws://me:5"});
  // several --config files: applied in order
  temp_yaml more("port: 1234\n");
  auto f = parse({"--config", more.str(), "--config", mpreg_file});
  CHECK(f.node.port == 9001);
  auto g = parse({"--config", mpreg_file, "--config", more.str()});
  CHECK(g.node.port == 1234);
  CHECK(g.node.name == "Server 1");
}

TEST_CASE("argv value errors come before config file errors") {
  CHECK(contains(error_of({"--config", "/nonexistent/x.yaml", "--port", "abc"}), "--port:"));
  CHECK(contains(error_of({"--config", "/nonexistent/x.yaml", "--port", "1"}),
                 "cannot read config file '/nonexistent/x.yaml'"));
}

TEST_CASE("unreadable and malformed files") {
  settings s;
  auto err = [&](const std::string& path) -> std::string {
    try {
      apply_yaml_config(path, s);
    } catch (const config_error& e) {
      return e.what();
    }
    FAIL("no error for " << path);
    return {};
  };
  CHECK(err("/nonexistent/x.yaml") ==
        "cannot read config file '/nonexistent/x.yaml': No such file or directory");
  CHECK(contains(err(data_dir), "it is a directory"));
  CHECK(contains(yaml_error("port: [1, 2\n"), "not valid YAML"));
  CHECK(contains(yaml_error("port: [1, 2\n"), "line "));
  CHECK(contains(yaml_error("- host\n- port\n"), "expected a map of settings"));
  CHECK(contains(yaml_error("just a string\n"), "expected a map of settings"));
  CHECK(contains(yaml_error("a: b: c\n"), "not valid YAML"));
  // an empty file (or comments only) changes nothing
  CHECK(yaml("").port == 6666);
  CHECK(yaml("# nothing\n").port == 6666);
}

TEST_CASE("wrong types in a settings file name the key") {
  CHECK(yaml_error("port: abc\n").find("key 'port': 'abc' is not a port number") != std::string::npos);
  CHECK(contains(yaml_error("port: 70000\n"), "key 'port'"));
  CHECK(contains(yaml_error("port: [1]\n"), "key 'port': expected a port number, got a list"));
  CHECK(contains(yaml_error("host: {a: 1}\n"), "key 'host': expected a host, got a map"));
  CHECK(contains(yaml_error("name: [x]\n"), "key 'name'"));
  CHECK(contains(yaml_error("cluster_id: [x]\n"), "key 'cluster_id'"));
  CHECK(contains(yaml_error("resources: {a: 1}\n"), "key 'resources'"));
  CHECK(contains(yaml_error("resources: [[a]]\n"), "key 'resources'"));
  CHECK(contains(yaml_error("peers: [http://x:1]\n"), "key 'peers': bad URL 'http://x:1'"));
  CHECK(contains(yaml_error("peers: {a: 1}\n"), "key 'peers'"));
  CHECK(contains(yaml_error("connect: [ws://a:1]\n"), "key 'connect'"));
  CHECK(contains(yaml_error("connect: localhost:9001\n"), "key 'connect': bad URL"));
  CHECK(contains(yaml_error("advertised_urls: [ws://a:x]\n"), "key 'advertised_urls'"));
  CHECK(contains(yaml_error("gossip_interval: fast\n"), "key 'gossip_interval'"));
  CHECK(contains(yaml_error("gossip_interval: 0\n"), "key 'gossip_interval'"));
  CHECK(contains(yaml_error("dead_peer_timeout: -1\n"), "key 'dead_peer_timeout'"));
  CHECK(contains(yaml_error("max_message_size: 1.5\n"), "key 'max_message_size'"));
  CHECK(contains(yaml_error("workers: many\n"), "key 'workers'"));
  CHECK(contains(yaml_error("host: \"\"\n"), "key 'host'"));
}

TEST_CASE("a failed file leaves the settings unchanged") {
  temp_yaml f("port: 1234\nname: changed\ngossip_interval: bad\n");
  settings s;
  CHECK_THROWS_AS(apply_yaml_config(f.str(), s), config_error);
  CHECK(s.port == 6666);
  CHECK(s.name == settings{}.name);
}

TEST_CASE("settings file values: lists, strings, nulls and our own keys") {
  auto s = yaml("resources: model-a\npeers: ws://a:1/, ws://b:2\nadvertised_urls: [ws://me:1/]\n"
                "port: \"9005\"\nworkers: 3\nio_spin_us: 0\nmax_in_flight: 9\nreconnect_max_backoff: 7\ndead_peer_timeout: 9\n"
                "max_message_size: 4096\nlog_level: [odd]\nunknown: null\n1: numeric key\n"
                "[a]: complex key\n");
  CHECK(s.resources == strings{"model-a"});
  CHECK(s.peers == strings{"ws://a:1", "ws://b:2"});
  CHECK(s.advertised_urls == strings{"ws://me:1"});
  CHECK(s.port == 9005);
  CHECK(s.worker_threads == 3u);
  CHECK(s.io_spin_us == 0u);
  CHECK(s.max_in_flight == 9u);
  CHECK(s.reconnect_max_backoff == 7.0);
  CHECK(s.dead_peer_timeout == 9.0);
  CHECK(s.max_message_size == 4096u);
  auto e = yaml("peers: []\nresources: [\"a\", null, \" \", b, a]\nconnect: \"\"\n");
  CHECK(e.peers.empty());
  CHECK(e.resources == strings{"a", "b"});
  CHECK(e.connect.empty());
  // nulls are ignored: the earlier value stays
  temp_yaml nulls("host: null\nport: ~\nname:\nresources: null\npeers: null\nconnect: null\n"
                  "gossip_interval: null\n");
  settings kept;
  kept.host = "h";
  kept.port = 1;
  kept.resources = {"r"};
  kept.peers = {"ws://p:1"};
  kept.connect = "ws://c:1";
  kept.gossip_interval = 0.5;
  apply_yaml_config(nulls.str(), kept);
  CHECK(kept.host == "h");
  CHECK(kept.port == 1);
  CHECK(kept.resources == strings{"r"});
  CHECK(kept.peers == strings{"ws://p:1"});
  CHECK(kept.connect == "ws://c:1");
  CHECK(kept.gossip_interval == 0.5);
  // MPREG's log_level: known names taken, others ignored
  temp_yaml lv("log_level: WARNING\n");
  node_options o;
  apply_yaml_config(lv.str(), o);
  CHECK(o.log_level == "warn");
  temp_yaml lv2("log_level: SUCCESS\n");
  apply_yaml_config(lv2.str(), o);
  CHECK(o.log_level == "warn");
}

TEST_CASE("errors from the command line name the config file") {
  temp_yaml f("port: nope\n");
  auto e = error_of({"--config", f.str()});
  CHECK(contains(e, "config file '" + f.str() + "': key 'port'"));
  CHECK(contains(error_of({"--port", "bad\nline"}), "'bad\\nline'")); // escaped: one line
}

TEST_CASE("checked_settings: settings built in code get the command line's ranges") {
  CHECK_NOTHROW(checked_settings(mpreg::settings{}));
  auto bad = [](auto change, const char* field) {
    mpreg::settings s;
    change(s);
    try {
      checked_settings(s);
      FAIL("accepted a bad " << field);
    } catch (const config_error& e) {
      CHECK(std::string(e.what()).find(std::string("settings.") + field + ": ") == 0);
    }
  };
  bad([](mpreg::settings& s) { s.port = 87841; }, "port");
  bad([](mpreg::settings& s) { s.host = ""; }, "host");
  bad([](mpreg::settings& s) { s.name = ""; }, "name");
  bad([](mpreg::settings& s) { s.cluster_id = "a\nb"; }, "cluster_id");
  bad([](mpreg::settings& s) { s.peers = {"http://x:1"}; }, "peers");
  bad([](mpreg::settings& s) { s.connect = "ws://"; }, "connect");
  bad([](mpreg::settings& s) { s.advertised_urls = {"nope"}; }, "advertised_urls");
  bad([](mpreg::settings& s) { s.gossip_interval = 0; }, "gossip_interval");
  bad([](mpreg::settings& s) { s.dead_peer_timeout = -1; }, "dead_peer_timeout");
  bad([](mpreg::settings& s) { s.reconnect_max_backoff = std::nan(""); }, "reconnect_max_backoff");
  bad([](mpreg::settings& s) { s.max_message_size = 0; }, "max_message_size");
  bad([](mpreg::settings& s) { s.worker_threads = 5000; }, "worker_threads");
  bad([](mpreg::settings& s) { s.io_spin_us = 1000000; }, "io_spin_us");
  bad([](mpreg::settings& s) { s.max_in_flight = 0; }, "max_in_flight");
  mpreg::settings ok;
  ok.port = 0;
  ok.peers = {"ws://127.0.0.1:1"};
  ok.connect = " ";
  ok.worker_threads = 0;
  CHECK_NOTHROW(checked_settings(ok));
  // URLs come back in the command line's normal form; a blank connect is none.
  ok.peers = {"WS://127.0.01:1/"};
  ok.advertised_urls = {"ws://[0::1]:2"};
  auto normal = checked_settings(ok);
  CHECK(normal.peers == strings{"ws://127.0.0.1:1"});
  CHECK(normal.advertised_urls == strings{"ws://[::1]:2"});
  CHECK(normal.connect.empty());
}
