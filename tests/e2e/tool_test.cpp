// Tests of the `mpreg-node` command line (PROTOCOL.md "The mpreg-node command
// line", "Node settings"): the ready line, signals, flags, config files,
// modules, the HTTP status page and restart on the same port.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "e2e/raw_ws.hpp"
#include "support/node_process.hpp"

using namespace std::chrono_literals;
using mpreg::json;
using mpreg::test::cmd;
using mpreg::test::node_process;
using mpreg::test::raw_conn;
using mpreg::test::rpc;
using steady = std::chrono::steady_clock;

extern char** environ;

namespace {

std::string node_exe() {
  if (const char* e = std::getenv("MPREG_TEST_NODE"); e && *e)
    return e;
  return MPREG_NODE_PATH;
}

long long ms_since(steady::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count();
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// What a short run of the tool did.
struct run_result {
  int code = -1; // exit code, 128+N for signal N, -1 if it had to be killed
  std::string out;
  std::string err;
};

// Runs mpreg-node with args to completion (SIGKILL after `limit`).
run_result run_tool(const std::vector<std::string>& args, std::chrono::milliseconds limit = 10s) {
  std::vector<std::string> argv_s{node_exe()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  int out_p[2], err_p[2];
  REQUIRE(::pipe2(out_p, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err_p, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out_p[1], 1);
    ::dup2(err_p[1], 2);
    ::execve(argv[0], argv.data(), environ);
    ::_exit(127);
  }
  ::close(out_p[1]);
  ::close(err_p[1]);
  run_result r;
  auto end = steady::now() + limit;
  bool out_open = true, err_open = true, killed = false;
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - steady::now()).count();
    if (left <= 0 && !killed) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    pollfd fds[2] = {{out_open ? out_p[0] : -1, POLLIN, 0}, {err_open ? err_p[0] : -1, POLLIN, 0}};
    ::poll(fds, 2, 100);
    char buf[4096];
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP)))
        continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
      } else {
        (i == 0 ? out_open : err_open) = false;
      }
    }
  }
  ::close(out_p[0]);
  ::close(err_p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (killed)
    r.code = -1;
  else if (WIFEXITED(status))
    r.code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    r.code = 128 + WTERMSIG(status);
  return r;
}

// Exactly one non-empty line, ending in a newline.
bool one_line(const std::string& s) {
  return !s.empty() && s.back() == '\n' && std::count(s.begin(), s.end(), '\n') == 1 &&
         s.size() > 1;
}

// The last non-empty line of a text.
std::string last_line(std::string s) {
  while (!s.empty() && s.back() == '\n')
    s.pop_back();
  auto nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

mpreg::transport::ws_client_endpoint& endpoint() {
  static mpreg::transport::ws_client_endpoint ep;
  return ep;
}

json call(const std::string& url, const std::string& u, const std::vector<std::string>& cmds) {
  raw_conn c(endpoint(), url);
  REQUIRE(c.send(rpc(u, cmds)));
  return c.wait_u(u, 10000ms);
}

json result_of(const json& frame) {
  INFO("frame: " << frame.dump());
  REQUIRE(frame.is_object());
  REQUIRE(frame.find("error") != nullptr);
  REQUIRE(frame.find("error")->is_null());
  return *frame.find("r");
}

int error_code_of(const json& frame) {
  INFO("frame: " << frame.dump());
  REQUIRE(frame.is_object());
  REQUIRE(frame.find("error") != nullptr);
  REQUIRE(frame.find("error")->is_object());
  return static_cast<int>(frame.find("error")->find("code")->as_int());
}

json status_of(int port) {
  auto s = mpreg::test::http_get(port, "/status");
  INFO("status: " << s.second);
  REQUIRE(s.first == 200);
  return json::parse(s.second);
}

std::vector<std::string> strings_of(const json* j) {
  std::vector<std::string> out;
  if (j && j->is_array())
    for (const auto& e : j->as_array())
      out.push_back(e.as_string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string temp_file(const std::string& name, const std::string& content) {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/mpreg-tool-test-" +
                     std::to_string(::getpid()) + "-" + name;
  std::ofstream(path) << content;
  return path;
}

} // namespace

TEST_CASE("tool: --port 0 prints exactly one ready line, serves, and exits 0 on SIGTERM") {
  auto t0 = steady::now();
  node_process node(node_exe(), {"--port", "0"});
  CHECK(ms_since(t0) < 5000);
  CHECK(std::regex_match(node.ready_line(),
                         std::regex(R"(mpreg-node listening on ws://127\.0\.0\.1:[1-9][0-9]*)")));
  CHECK(node.url() == "ws://127.0.0.1:" + std::to_string(node.port()));
  auto f = call(node.url(), "t1", {cmd("|a", "echo", R"(["hi there!"])")});
  CHECK(result_of(f) == json::parse(R"({"|a": "hi there!"})"));
  auto h = mpreg::test::http_get(node.port(), "/health");
  CHECK(h.first == 200);
  t0 = steady::now();
  CHECK(node.terminate(5000ms) == 0);
  CHECK(ms_since(t0) < 5000);
  CHECK(node.stdout_text().empty()); // the ready line is the only stdout line
}

TEST_CASE("tool: a closed stdout (`mpreg-node | head -1` after head exits) does not stop the node") {
  int port = mpreg::test::free_port();
  std::string err_path = "/tmp/mpreg-closed-stdout-" + std::to_string(::getpid()) + ".err";
  std::string port_s = std::to_string(port);
  std::string exe = node_exe();
  const char* argv[] = {exe.c_str(), "--port", port_s.c_str(), nullptr};
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(p[1], 1); // nobody reads the other end
    ::dup2(err, 2);
    ::execve(argv[0], const_cast<char* const*>(argv), environ);
    ::_exit(127);
  }
  ::close(p[0]);
  ::close(p[1]);
  auto t0 = steady::now();
  while (mpreg::test::http_get(port, "/health", 500ms).first != 200 && ms_since(t0) < 10000)
    std::this_thread::sleep_for(20ms);
  CHECK(mpreg::test::http_get(port, "/health").first == 200);
  auto f = call("ws://127.0.0.1:" + port_s, "closed-out", {cmd("|a", "echo", R"(["still here"])")});
  CHECK(result_of(f) == json::parse(R"({"|a": "still here"})"));
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::ifstream in(err_path);
  std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(contains(err, "could not write the ready line"));
  ::unlink(err_path.c_str());
}

TEST_CASE("tool: SIGINT exits 0 too, also with clients connected and a request running") {
  node_process node(node_exe(), {"--port", "0", "--module", MPREG_TEST_MODULE_PATH});
  raw_conn idle(endpoint(), node.url());
  raw_conn busy(endpoint(), node.url());
  REQUIRE(busy.send(rpc("slow", {cmd("|s", "sleep_ms", "[1500]")})));
  std::this_thread::sleep_for(100ms); // let it start
  auto t0 = steady::now();
  REQUIRE(node.signal(SIGINT));
  CHECK(node.wait(5000ms) == 0);
  CHECK(ms_since(t0) < 5000);
  CHECK(idle.wait_closed(3000ms));
  CHECK(busy.wait_closed(3000ms));
  // The running request got its one answer before the close.
  auto answer = busy.wait_u("slow", 100ms);
  REQUIRE(answer.is_object());
  const json* error = answer.find("error");
  REQUIRE((error && error->is_object()));
  CHECK(*error->find("code") == json(1002));
  CHECK(error->find("message")->as_string().find("node is stopping") != std::string::npos);
}

TEST_CASE("tool: --max-in-flight: a flood of forwarded calls is answered once each, reading resumes") {
  // Forwarded calls (internal-rpc) go straight to the pool; past twice the
  // limit on one connection it is read no more until half have finished.
  node_process node(node_exe(), {"--port", "0", "--module", MPREG_TEST_MODULE_PATH,
                                 "--max-in-flight", "2"});
  raw_conn peer(endpoint(), node.url());
  const int calls = 40;
  for (int i = 0; i < calls; ++i)
    REQUIRE(peer.send(R"({"role":"internal-rpc","command":"sleep_ms","args":[20],"kwargs":{},)"
                      R"("results":{},"u":"c)" + std::to_string(i) + R"("})"));
  REQUIRE(peer.send(rpc("after", {cmd("|e", "echo", "[\"read\"]")})));
  for (int i = 0; i < calls; ++i) {
    auto u = "c" + std::to_string(i);
    CAPTURE(u);
    auto a = peer.wait_u(u, 20000ms);
    REQUIRE(a.is_object());
    CHECK(*a.find("role") == json("internal-answer"));
    CHECK(*a.find("answer") == json(20));
  }
  auto after = peer.wait_u("after", 10000ms);
  REQUIRE(after.is_object());
  CHECK(*after.find("r") == json::parse(R"({"|e": "read"})"));
  for (int i = 0; i < calls; ++i)
    CHECK(peer.count_u("c" + std::to_string(i)) == 1);
  CHECK(node.terminate() == 0);
}

TEST_CASE("tool: --max-in-flight: a peer's calls past the limit are refused as busy, STATUS still answered") {
  // A connection that said HELLO is a peer's link: it is never paused (it
  // would stop answering STATUS, and its node would drop the link with its
  // calls still running here); calls past 2 x max_in_flight get 1008 at
  // once, so the peer runs them elsewhere.
  node_process node(node_exe(), {"--port", "0", "--module", MPREG_TEST_MODULE_PATH,
                                 "--max-in-flight", "2"});
  raw_conn peer(endpoint(), node.url());
  REQUIRE(peer.send(R"({"role":"server","u":"h1","server":{"what":"HELLO","funs":[],"locs":[],)"
                    R"("cluster_id":"default-cluster","advertised_urls":["ws://127.0.0.1:9"]}})"));
  REQUIRE(peer.wait_u("h1", 5000ms).is_object());
  const int calls = 10;
  for (int i = 0; i < calls; ++i)
    REQUIRE(peer.send(R"({"role":"internal-rpc","command":"sleep_ms","args":[3000],"kwargs":{},)"
                      R"("results":{},"u":"c)" + std::to_string(i) + R"("})"));
  REQUIRE(peer.send(R"({"role":"server","u":"st","server":{"what":"STATUS"}})"));
  auto t0 = steady::now();
  auto status = peer.wait_u("st", 5000ms);
  REQUIRE(status.is_object());
  CHECK(*status.find("r") == json("STATUS"));
  CHECK(ms_since(t0) < 3000); // before any call finished: the connection was read
  int ran = 0, busy = 0;
  for (int i = 0; i < calls; ++i) {
    auto a = peer.wait_u("c" + std::to_string(i), 20000ms);
    REQUIRE(a.is_object());
    const json* err = a.find("error");
    if (err && err->is_object()) {
      CHECK(*err->find("code") == json(1008));
      CHECK(err->find("message")->as_string().find("busy") != std::string::npos);
      ++busy;
    } else {
      CHECK(*a.find("answer") == json(3000));
      ++ran;
    }
  }
  CHECK(ran == 4);
  CHECK(busy == 6);
  CHECK(node.terminate() == 0);
}

TEST_CASE("tool: --max-in-flight: a flood waits its turn, every request is answered once") {
  node_process node(node_exe(), {"--port", "0", "--module", MPREG_TEST_MODULE_PATH,
                                 "--max-in-flight", "2"});
  raw_conn flood(endpoint(), node.url());
  auto t0 = steady::now();
  // Ten 150 ms calls sent at once: two run at a time, the rest wait in the
  // node (not refused), so they take five rounds instead of one.
  for (int i = 0; i < 10; ++i)
    REQUIRE(flood.send(rpc("f" + std::to_string(i), {cmd("|s", "sleep_ms", "[150]")})));
  // One more whose 0.3 s timeout runs out while it waits: its timeout counts
  // from its arrival, not from its start.
  REQUIRE(flood.send(rpc("late", {cmd("|s", "sleep_ms", "[150]")}, R"("timeout": 0.3)")));
  for (int i = 0; i < 10; ++i) {
    auto u = "f" + std::to_string(i);
    auto answer = flood.wait_u(u, 10000ms);
    CAPTURE(u);
    REQUIRE(answer.is_object());
    CHECK(*answer.find("r") == json::parse(R"({"|s": 150})"));
  }
  CHECK(ms_since(t0) >= 5 * 150);
  auto late = flood.wait_u("late", 10000ms);
  REQUIRE(late.is_object());
  REQUIRE(late.find("error")->is_object());
  CHECK(*late.find("error")->find("code") == json(1007));
  CHECK(*late.find("error")->find("details")->find("timeout") == json(0.3));
  // A waiting request's timeout fires while it waits, even when the requests
  // ahead of it never end in time.
  REQUIRE(flood.send(rpc("long1", {cmd("|s", "sleep_ms", "[3000]")})));
  REQUIRE(flood.send(rpc("long2", {cmd("|s", "sleep_ms", "[3000]")})));
  auto t1 = steady::now();
  REQUIRE(flood.send(rpc("stuck", {cmd("|s", "sleep_ms", "[0]")}, R"("timeout": 0.3)")));
  auto stuck = flood.wait_u("stuck", 10000ms);
  CHECK(ms_since(t1) < 2500); // answered at its deadline, not when a slot freed
  REQUIRE(stuck.is_object());
  REQUIRE(stuck.find("error")->is_object());
  CHECK(*stuck.find("error")->find("code") == json(1007));
  CHECK(*stuck.find("error")->find("details")->find("pending") == json::parse(R"(["|s"])"));
  CHECK(flood.wait_u("long1", 10000ms).is_object());
  CHECK(flood.wait_u("long2", 10000ms).is_object());
  // Reading the flooding connection resumed once its requests were done.
  REQUIRE(flood.send(rpc("again", {cmd("|s", "sleep_ms", "[0]")})));
  CHECK(flood.wait_u("again", 5000ms).is_object());
  // Another connection is not held back by the first one's limit.
  raw_conn other(endpoint(), node.url());
  REQUIRE(other.send(rpc("other", {cmd("|s", "sleep_ms", "[0]")})));
  CHECK(other.wait_u("other", 5000ms).is_object());
}

TEST_CASE("tool: a signal sent twice at once (as `timeout` does) stops the node cleanly, exit 0") {
  node_process node(node_exe(), {"--port", "0"});
  raw_conn client(endpoint(), node.url());
  REQUIRE(node.signal(SIGTERM));
  REQUIRE(node.signal(SIGTERM));
  CHECK(node.wait(5000ms) == 0);
  CHECK(client.wait_closed(3000ms));
  // The clean path ran (GOODBYE, close), not the forced exit.
  CHECK(node.stderr_text().find("exiting now") == std::string::npos);
}

TEST_CASE("tool: SIGTERM exits 0 within a few seconds even when a client never answers the close") {
  node_process node(node_exe(), {"--port", "0", "--module", MPREG_TEST_MODULE_PATH});
  mpreg::test::tcp_ws mute(node.port()); // never reads, never replies to the close
  REQUIRE(mute.send_frame(mpreg::test::tcp_ws::text, rpc("m", {cmd("|s", "sleep_ms", "[10000]")})));
  std::this_thread::sleep_for(100ms);
  auto t0 = steady::now();
  REQUIRE(node.signal(SIGTERM));
  CHECK(node.wait(8000ms) == 0);
  CHECK(ms_since(t0) < 8000);
  MESSAGE("stopped in " << ms_since(t0) << " ms");
}

// CPU seconds a process has used so far (utime + stime from /proc).
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2)); // after "pid (comm) "
  std::string f;
  long long ticks = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i)
    if (i == 14 || i == 15) // utime, stime
      ticks += std::stoll(f);
  return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// UBSan probes memory through a pipe when it checks a vptr; in a process with
// no descriptor free it reports every such check as an invalid vptr. The
// sanitizer build skips the one test that exhausts them (the code under test
// is the same in both builds).
#ifdef __SANITIZE_ADDRESS__
constexpr bool exhausts_descriptors_badly = true;
#else
constexpr bool exhausts_descriptors_badly = false;
#endif

TEST_CASE("tool: out of file descriptors, the node backs off instead of spinning, then serves" *
          doctest::skip(exhausts_descriptors_badly)) {
  // 64 descriptors, hard limit too (the node raises its soft limit to the hard one).
  node_process node("/usr/bin/prlimit", {"--nofile=64:64", node_exe(), "--port", "0"});
  std::vector<int> held; // more TCP connections than the node can accept
  for (int i = 0; i < 120; ++i) {
    int fd = mpreg::test::tcp_connect_local(node.port());
    REQUIRE(fd >= 0);
    held.push_back(fd);
  }
  auto t0 = steady::now();
  while (!contains(node.stderr_text(), "cannot accept connections") && ms_since(t0) < 10000)
    std::this_thread::sleep_for(20ms);
  INFO(node.stderr_text());
  REQUIRE(contains(node.stderr_text(), "cannot accept connections: Too many open files"));
  // websocketpp alone retries a failed accept at once: a busy loop, a whole core.
  double cpu0 = cpu_seconds(node.pid());
  auto w0 = steady::now();
  std::this_thread::sleep_for(1s);
  double wall = static_cast<double>(ms_since(w0)) / 1000.0;
  double used = cpu_seconds(node.pid()) - cpu0;
  MESSAGE("CPU while out of descriptors: " << used << " s in " << wall << " s");
  CHECK(used < 0.5 * wall);
  for (int fd : held)
    ::close(fd);
  // Descriptors free again: a client gets through (within the backoff's 1 s).
  auto answer = call(node.url(), "after", {cmd("e", "echo", "[\"back\"]")});
  CHECK(result_of(answer).find("e")->as_string() == "back");
  CHECK(contains(node.stderr_text(), "accepting connections again"));
  CHECK(node.terminate() == 0);
}

TEST_CASE("tool: gossip: entries without a numeric last_seen are refused; future ones expire") {
  node_process node(node_exe(), {"--port", "0", "--dead-peer-timeout", "2", "--gossip-interval",
                                 "0.2"});
  raw_conn c(endpoint(), node.url());
  auto gossip = [](const std::string& u, int port, const std::string& last_seen) {
    return R"({"role":"gossip","cluster_id":"default-cluster","u":")" + u +
           R"(","peers":[{"url":"ws://127.0.0.1:)" + std::to_string(port) +
           R"(","funs":["y"],"locs":[],"cluster_id":"default-cluster")" + last_seen + "}]}";
  };
  auto peer_urls = [&] {
    std::vector<std::string> urls;
    json status = status_of(node.port());
    for (const auto& p : status.find("peers")->as_array())
      urls.push_back(p.find("url")->as_string());
    return urls;
  };
  auto has = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  // Not a number, or missing: 1006, nothing learned.
  REQUIRE(c.send(gossip("g1", 9, R"(,"last_seen":"x")")));
  CHECK(error_code_of(c.wait_u("g1")) == 1006);
  REQUIRE(c.send(gossip("g2", 9, "")));
  CHECK(error_code_of(c.wait_u("g2")) == 1006);
  // Seen by the sender longer than the dead-peer timeout before its own
  // (newest) entry: a dead peer, ignored (no reply: gossip).
  double t = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  REQUIRE(c.send(R"({"role":"gossip","cluster_id":"default-cluster","u":"g3","peers":[)"
                 R"({"url":"ws://127.0.0.1:12","funs":[],"last_seen":)" + std::to_string(t) + "},"
                 R"({"url":"ws://127.0.0.1:10","funs":["y"],"last_seen":)" +
                 std::to_string(t - 100) + "}]}"));
  // From the future (another clock): moved to this node's clock, so it expires.
  REQUIRE(c.send(gossip("g4", 11, R"(,"last_seen":1e300)")));
  std::vector<std::string> urls;
  auto t0 = steady::now();
  while (!has(urls = peer_urls(), "ws://127.0.0.1:11") && ms_since(t0) < 10000)
    std::this_thread::sleep_for(20ms);
  REQUIRE(has(urls, "ws://127.0.0.1:11"));
  // The gossip actor took g3 before g4.
  CHECK_FALSE(has(urls, "ws://127.0.0.1:10"));
  CHECK_FALSE(has(urls, "ws://127.0.0.1:9"));
  while (has(urls = peer_urls(), "ws://127.0.0.1:11") && ms_since(t0) < 15000)
    std::this_thread::sleep_for(50ms);
  CHECK_FALSE(has(urls, "ws://127.0.0.1:11"));
  MESSAGE("the peer seen 'in the future' was forgotten after " << ms_since(t0) << " ms");
  CHECK(c.frame_count() == 2); // errors for g1 and g2 only
  CHECK(node.terminate() == 0);
}

TEST_CASE("tool: once a HELLO is ADDED, the new peer's functions route at once (no 1001)") {
  node_process b(node_exe(), {"--port", "0", "--name", "b", "--resources", "rb"});
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    node_process a(node_exe(), {"--port", "0", "--name", "a"});
    raw_conn c(endpoint(), a.url());
    // Introduce b to a, as b's own link would.
    REQUIRE(c.send(R"({"role":"server","u":"hello","server":{"what":"HELLO","funs":["echo"],)"
                   R"("locs":["rb"],"cluster_id":"default-cluster","advertised_urls":[")" +
                   b.url() + R"("]}})"));
    auto added = c.wait_u("hello");
    INFO("HELLO answer: " << added.dump());
    REQUIRE(added.find("r"));
    CHECK(added.find("r")->as_string() == "ADDED");
    // Only b has "rb": a must route the call to b right away.
    REQUIRE(c.send(rpc("right-after", {R"({"name":"e","fun":"echo","args":["via b"],"locs":["rb"]})"})));
    CHECK(result_of(c.wait_u("right-after")).find("e")->as_string() == "via b");
  }
}

TEST_CASE("tool: a node never peers with itself, whatever alias gossip names it by") {
  int port = mpreg::test::free_port();
  // Advertised under a name only it knows: 127.0.0.1 is an alias of it.
  node_process node(node_exe(), {"--port", std::to_string(port), "--advertised-urls",
                                 "ws://a.invalid:" + std::to_string(port), "--gossip-interval",
                                 "0.2", "--dead-peer-timeout", "2"});
  raw_conn c(endpoint(), node.url());
  double t = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto entry = [&](const std::string& url) {
    return R"({"url":")" + url + R"(","funs":["evil"],"locs":[],"last_seen":)" + std::to_string(t) +
           "}";
  };
  std::string p = std::to_string(port);
  REQUIRE(c.send(R"({"role":"gossip","cluster_id":"default-cluster","u":"g","peers":[)" +
                 entry("ws://a.invalid:" + p + "/") + "," + entry("WS://A.INVALID:" + p) + "," +
                 entry("ws://127.0.0.1:" + p) + "]}"));
  // The loopback alias is linked to, and refused by the node itself.
  auto t0 = steady::now();
  while (!contains(node.stderr_text(), "HELLO from this node itself") && ms_since(t0) < 10000)
    std::this_thread::sleep_for(20ms);
  INFO(node.stderr_text());
  CHECK(contains(node.stderr_text(), "HELLO from this node itself"));
  // Nothing routes "evil" anywhere, and no link to itself is up.
  auto answer = call(node.url(), "evil", {cmd("e", "evil", "[]")});
  CHECK(error_code_of(answer) == 1001);
  json status = status_of(node.port());
  for (const auto& peer : status.find("peers")->as_array()) {
    CHECK(peer.find("url")->as_string() == "ws://127.0.0.1:" + p); // the aliases of its name: never
    CHECK(peer.find("link")->as_string() == "down");
  }
  CHECK(node.terminate() == 0);
}

TEST_CASE("tool: --help and --version exit 0") {
  auto r = run_tool({"--help"});
  CHECK(r.code == 0);
  for (auto flag : {"--config", "--host", "--port", "--name", "--cluster-id", "--resources",
                    "--peers", "--connect", "--advertised-urls", "--gossip-interval",
                    "--max-message-size", "--module", "--log-level"})
    CHECK_MESSAGE(contains(r.out, flag), flag);
  r = run_tool({"--version"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "mpreg-node"));
  CHECK(one_line(r.out));
}

TEST_CASE("tool: bad command lines exit non-zero with a one-line reason on stderr") {
  struct bad {
    std::vector<std::string> args;
    const char* mentions;
  };
  std::vector<bad> cases = {
    {{"--port", "0", "--no-such-flag"}, "--no-such-flag"},
    {{"--bogus"}, "--bogus"},
    {{"--port", "not-a-port"}, "port"},
    {{"--port", "70000"}, "port"},
    {{"--port"}, "port"},
    {{"--port", "0", "--gossip-interval", "soon"}, "gossip"},
    {{"--port", "0", "--max-message-size", "-5"}, "max-message-size"},
    {{"--port", "0", "--log-level", "loud"}, "loud"},
    {{"--port", "0", "--config", "/nonexistent/mpreg.yaml"}, "/nonexistent/mpreg.yaml"},
  };
  for (const auto& bc : cases) {
    std::string joined;
    for (const auto& a : bc.args)
      joined += a + " ";
    CAPTURE(joined);
    auto t0 = steady::now();
    auto r = run_tool(bc.args, 10s);
    CHECK(r.code > 0);
    CHECK(r.code < 128); // an exit, not a crash
    CHECK(ms_since(t0) < 5000);
    CHECK_MESSAGE(one_line(r.err), "stderr: " << r.err);
    CHECK_MESSAGE(contains(r.err, bc.mentions), "stderr: " << r.err);
    CHECK(r.out.empty());
  }
}

TEST_CASE("tool: an unreadable or malformed config file is refused") {
  auto dir_path = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp");
  auto r = run_tool({"--port", "0", "--config", dir_path});
  CHECK(r.code > 0);
  CHECK(r.code < 128);
  CHECK_MESSAGE(one_line(r.err), r.err);
  auto bad_yaml = temp_file("bad.yaml", "port: [unclosed\n  - {\n");
  r = run_tool({"--port", "0", "--config", bad_yaml});
  CHECK(r.code > 0);
  CHECK(r.code < 128);
  CHECK_MESSAGE(one_line(r.err), r.err);
  auto not_map = temp_file("list.yaml", "- a\n- b\n");
  r = run_tool({"--port", "0", "--config", not_map});
  CHECK(r.code > 0);
  CHECK_MESSAGE(one_line(r.err), r.err);
  if (::geteuid() != 0) { // root reads anything
    auto locked = temp_file("locked.yaml", "name: x\n");
    ::chmod(locked.c_str(), 0);
    r = run_tool({"--port", "0", "--config", locked});
    CHECK(r.code > 0);
    CHECK_MESSAGE(one_line(r.err), r.err);
    ::unlink(locked.c_str());
  }
  ::unlink(bad_yaml.c_str());
  ::unlink(not_map.c_str());
}

TEST_CASE("tool: --config applies MPREG's settings file; --port 0 overrides its port") {
  node_process node(node_exe(), {"--config", MPREG_TEST_DATA "/mpreg-settings.yaml", "--port", "0",
                                 "--module", MPREG_EXAMPLE_MODULE_PATH});
  CHECK(node.port() != 9001); // the file says 9001; the flag wins (0: a free port)
  auto st = status_of(node.port());
  INFO("status: " << st.dump());
  REQUIRE(st.find("name") != nullptr);
  CHECK(*st.find("name") == json("Server 1"));
  REQUIRE(st.find("cluster_id") != nullptr);
  CHECK(*st.find("cluster_id") == json("prod-cluster"));
  CHECK(strings_of(st.find("resources")) == std::vector<std::string>{"dataset-1", "model-a"});
  auto funs = strings_of(st.find("functions"));
  for (auto f : {"add", "dataset_sum", "echo", "echos", "word_count"})
    CHECK_MESSAGE(std::find(funs.begin(), funs.end(), f) != funs.end(), f);
  // The resources route: node resources satisfy locs for every function.
  auto f = call(node.url(), "cfg1",
                {cmd("|s", "dataset_sum", "[[1, 2, 3.5]]", "", R"(["dataset-1"])")});
  CHECK(result_of(f) == json::parse(R"({"|s": 6.5})"));
  f = call(node.url(), "cfg2", {cmd("|e", "echo", R"(["m"])", "", R"(["model-a", "dataset-1"])")});
  CHECK(result_of(f) == json::parse(R"({"|e": "m"})"));
  f = call(node.url(), "cfg3", {cmd("|e", "echo", R"(["m"])", "", R"(["model-b"])")});
  CHECK(error_code_of(f) == 1001);
  CHECK(node.terminate() == 0);
}

TEST_CASE("tool: config files: unknown keys and nulls ignored, lists as strings, trailing / on URLs") {
  auto path = temp_file("settings.yaml",
                        "host: 127.0.0.1\n"
                        "port: 9\n"
                        "name: yaml-node\n"
                        "resources: \"alpha, beta\"\n"
                        "cluster_id: yaml-cluster\n"
                        "advertised_urls: [\"ws://127.0.0.1:1234/\"]\n"
                        "peers: null\n"
                        "connect: null\n"
                        "gossip_interval: 1.5\n"
                        "log_level: DEBUG\n"
                        "some_future_setting: {nested: [1, 2]}\n"
                        "monitoring_port: 9090\n");
  node_process node(node_exe(), {"--config", path, "--port", "0", "--log-level", "warn"});
  auto st = status_of(node.port());
  INFO("status: " << st.dump());
  CHECK(*st.find("name") == json("yaml-node"));
  CHECK(*st.find("cluster_id") == json("yaml-cluster"));
  CHECK(strings_of(st.find("resources")) == std::vector<std::string>{"alpha", "beta"});
  // The advertised URL comes from the file, normalised.
  REQUIRE(st.find("node") != nullptr);
  CHECK(*st.find("node")->find("url") == json("ws://127.0.0.1:1234"));
  auto f = call(node.url(), "y1", {cmd("|e", "echo", "[1]", "", R"(["alpha", "beta"])")});
  CHECK(result_of(f) == json::parse(R"({"|e": 1})"));
  CHECK(node.terminate() == 0);
  ::unlink(path.c_str());
}

TEST_CASE("tool: the advertised URL defaults to the bound address; --host binds") {
  node_process node(node_exe(), {"--host", "127.0.0.1", "--port", "0"});
  auto st = status_of(node.port());
  INFO("status: " << st.dump());
  REQUIRE(st.find("node") != nullptr);
  CHECK(*st.find("node")->find("url") == json(node.url()));
  CHECK(node.terminate() == 0);
}

TEST_CASE("tool: an unreachable peer does not stop a node from serving or exiting") {
  int dead = mpreg::test::free_port();
  node_process node(node_exe(), {"--port", "0", "--peers", "ws://127.0.0.1:" + std::to_string(dead),
                                 "--gossip-interval", "0.2"});
  auto f = call(node.url(), "peer1", {cmd("|e", "echo", R"(["alone"])")});
  CHECK(result_of(f) == json::parse(R"({"|e": "alone"})"));
  std::this_thread::sleep_for(300ms); // a reconnect attempt or two
  f = call(node.url(), "peer2", {cmd("|e", "echo", R"(["still"])")});
  CHECK(result_of(f) == json::parse(R"({"|e": "still"})"));
  // A mistyped seed shows at the default log level, once, not per retry.
  const std::string warned = "cannot link to seed ws://127.0.0.1:" + std::to_string(dead);
  auto t0 = steady::now();
  while (!contains(node.stderr_text(), warned) && ms_since(t0) < 5000)
    std::this_thread::sleep_for(20ms);
  CHECK(contains(node.stderr_text(), warned));
  t0 = steady::now();
  CHECK(node.terminate(5000ms) == 0);
  CHECK(ms_since(t0) < 5000);
  auto err = node.stderr_text();
  CHECK(err.find("cannot link to seed") == err.rfind("cannot link to seed"));
}

TEST_CASE("tool: flags set name, cluster and resources; without them locs do not match") {
  node_process plain(node_exe(), {"--port", "0"});
  auto f = call(plain.url(), "p1", {cmd("|e", "echo", "[1]", "", R"(["model-a"])")});
  CHECK(error_code_of(f) == 1001);
  auto st = status_of(plain.port());
  CHECK(*st.find("cluster_id") == json("default-cluster"));
  CHECK(plain.terminate() == 0);

  node_process flagged(node_exe(), {"--port", "0", "--name", "flag-node", "--cluster-id", "c-9",
                                    "--resources", "model-a, gpu"});
  st = status_of(flagged.port());
  INFO("status: " << st.dump());
  CHECK(*st.find("name") == json("flag-node"));
  CHECK(*st.find("cluster_id") == json("c-9"));
  CHECK(strings_of(st.find("resources")) == std::vector<std::string>{"gpu", "model-a"});
  f = call(flagged.url(), "p2", {cmd("|e", "echo", "[1]", "", R"(["model-a", "gpu"])")});
  CHECK(result_of(f) == json::parse(R"({"|e": 1})"));
  CHECK(flagged.terminate() == 0);
}

TEST_CASE("tool: --module loads the example module's functions") {
  node_process node(node_exe(), {"--port", "0", "--module", MPREG_EXAMPLE_MODULE_PATH});
  auto f = call(node.url(), "m1", {cmd("|a", "add", "[2, 3]")});
  CHECK(result_of(f) == json::parse(R"({"|a": 5.0})"));
  f = call(node.url(), "m2", {cmd("|a", "add", "[]", R"({"a": 1.5, "b": 2})")});
  CHECK(result_of(f) == json::parse(R"({"|a": 3.5})"));
  f = call(node.url(), "m3", {cmd("|w", "word_count", R"(["the cat the hat\tthe end"])")});
  CHECK(result_of(f) == json::parse(R"({"|w": {"cat": 1, "end": 1, "hat": 1, "the": 3}})"));
  // The function's own resource: dataset_sum routes with locs dataset-1 here.
  f = call(node.url(), "m4", {cmd("|s", "dataset_sum", "[[1, 2]]", "", R"(["dataset-1"])")});
  CHECK(result_of(f) == json::parse(R"({"|s": 3.0})"));
  f = call(node.url(), "m5", {cmd("|a", "add", R"(["x", 1])")});
  CHECK(error_code_of(f) == 1003);
  // Two modules load side by side.
  CHECK(node.terminate() == 0);
  node_process both(node_exe(), {"--port", "0", "--module", MPREG_EXAMPLE_MODULE_PATH, "--module",
                                 MPREG_TEST_MODULE_PATH});
  f = call(both.url(), "m6", {cmd("|w", "word_count", R"(["a a"])"), cmd("|s", "sleep_ms", "[1]")});
  CHECK(result_of(f) == json::parse(R"({"|w": {"a": 2}, "|s": 1})"));
  CHECK(both.terminate() == 0);
}

TEST_CASE("tool: a module that cannot be loaded stops the node with a reason") {
  auto t0 = steady::now();
  auto r = run_tool({"--port", "0", "--module", "/nonexistent/libnothing.so"}, 10s);
  CHECK(r.code > 0);
  CHECK(r.code < 128);
  CHECK(ms_since(t0) < 5000);
  CHECK_MESSAGE(contains(last_line(r.err), "/nonexistent/libnothing.so"), r.err);
  CHECK(r.out.empty()); // never announced a listening socket
  // A file that is not a shared library.
  r = run_tool({"--port", "0", "--module", MPREG_TEST_DATA "/mpreg-settings.yaml"}, 10s);
  CHECK(r.code > 0);
  CHECK(r.code < 128);
  CHECK_MESSAGE(contains(last_line(r.err), "mpreg-settings.yaml"), r.err);
  CHECK(r.out.empty());
}

TEST_CASE("tool: a port in use is a non-zero exit with a reason") {
  node_process first(node_exe(), {"--port", "0"});
  auto r = run_tool({"--port", std::to_string(first.port())}, 10s);
  CHECK(r.code > 0);
  CHECK(r.code < 128);
  CHECK_MESSAGE(contains(last_line(r.err), std::to_string(first.port())), r.err);
  CHECK(r.out.empty());
  CHECK(first.terminate() == 0);
}

TEST_CASE("tool: a node restarted on the same port right after SIGKILL binds") {
  int port = mpreg::test::free_port();
  auto args = std::vector<std::string>{"--port", std::to_string(port)};
  auto first = std::make_unique<node_process>(node_exe(), args);
  CHECK(first->port() == port);
  {
    // An established connection, so the killed socket leaves TIME_WAIT behind.
    raw_conn c(endpoint(), first->url());
    REQUIRE(c.send(rpc("k1", {cmd("|a", "echo", "[1]")})));
    CHECK(c.wait_u("k1").is_object());
    first->kill();
    CHECK(c.wait_closed(3000ms));
  }
  // No retry: the listening socket is reusable at once.
  node_process second(node_exe(), args);
  CHECK(second.port() == port);
  auto f = call(second.url(), "k2", {cmd("|a", "echo", R"(["again"])")});
  CHECK(result_of(f) == json::parse(R"({"|a": "again"})"));
  CHECK(second.terminate() == 0);
}

TEST_CASE("tool: HTTP status pages on the WebSocket port") {
  node_process node(node_exe(), {"--port", "0", "--name", "http-node", "--module",
                                 MPREG_TEST_MODULE_PATH});
  auto st = status_of(node.port());
  INFO("status: " << st.dump());
  CHECK(*st.find("name") == json("http-node"));
  auto funs = strings_of(st.find("functions"));
  for (auto fn : {"echo", "echos", "sleep_ms", "fail"})
    CHECK_MESSAGE(std::find(funs.begin(), funs.end(), fn) != funs.end(), fn);
  CHECK(st.find("resources") != nullptr);
  auto h = mpreg::test::http_get(node.port(), "/health");
  CHECK(h.first == 200);
  auto missing = mpreg::test::http_get(node.port(), "/no-such-page");
  CHECK(missing.first == 404);
  // A query string (a cache buster, a probe's tag) does not change the page.
  CHECK(mpreg::test::http_get(node.port(), "/health?probe=1").first == 200);
  CHECK(mpreg::test::http_get(node.port(), "/status?x").second.find("http-node") != std::string::npos);
  // Pages are read-only.
  auto post = mpreg::test::http_get(node.port(), "/health", 5000ms, "POST");
  CHECK(post.first == 405);
  auto head = mpreg::test::http_get(node.port(), "/health", 5000ms, "HEAD");
  CHECK(head.first == 200);
  CHECK(head.second.empty());
  // WebSocket still works next to HTTP.
  auto f = call(node.url(), "h1", {cmd("|a", "echo", "[1]")});
  CHECK(result_of(f) == json::parse(R"({"|a": 1})"));
  CHECK(node.terminate() == 0);
}
