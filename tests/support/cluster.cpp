#include "support/cluster.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <thread>

namespace mpreg::test {

namespace {

using clock = std::chrono::steady_clock;

int ms_left(clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// Splits "ws://host:port[/...]" into host and port; false when it is not one.
bool split_url(const std::string& url, std::string& host, int& port) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos)
    return false;
  auto rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  auto colon = rest.rfind(':');
  if (colon == std::string::npos)
    return false;
  host = rest.substr(0, colon);
  port = std::atoi(rest.c_str() + colon + 1);
  return port > 0;
}

std::string join(const std::vector<std::string>& xs) {
  std::string out;
  for (const auto& x : xs)
    out += (out.empty() ? "" : ",") + x;
  return out;
}

std::vector<std::string> strings_of(const json* j) {
  std::vector<std::string> out;
  if (j && j->is_array())
    for (const auto& e : j->as_array())
      if (e.is_string())
        out.push_back(e.as_string());
  return out;
}

bool includes(std::vector<std::string> have, std::vector<std::string> want) {
  std::sort(have.begin(), have.end());
  std::sort(want.begin(), want.end());
  return std::includes(have.begin(), have.end(), want.begin(), want.end());
}

} // namespace

std::optional<std::string> http_get(const std::string& host, int port, const std::string& path,
                                    std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return std::nullopt;
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1)
    return std::nullopt;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (errno != EINPROGRESS)
      return std::nullopt;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, ms_left(deadline)) <= 0)
      return std::nullopt;
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
      return std::nullopt;
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host + ":" + std::to_string(port) +
                    "\r\nConnection: close\r\n\r\n";
  std::size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, ms_left(deadline)) <= 0)
        return std::nullopt;
      continue;
    }
    return std::nullopt;
  }
  std::string in;
  char buf[8192];
  for (;;) {
    // Stop as soon as the whole body (Content-Length) is in.
    auto head_end = in.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      std::string head = in.substr(0, head_end);
      std::string lower = head;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      auto cl = lower.find("content-length:");
      if (cl != std::string::npos) {
        auto len = std::strtoul(head.c_str() + cl + 15, nullptr, 10);
        if (in.size() >= head_end + 4 + len)
          break;
      }
    }
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, ms_left(deadline));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return std::nullopt; // timeout
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      in.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      continue;
    break; // EOF (or error): take what arrived
  }
  auto head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos)
    return std::nullopt;
  // "HTTP/1.1 200 OK"
  auto sp = in.find(' ');
  if (sp == std::string::npos || sp > head_end || std::atoi(in.c_str() + sp + 1) != 200)
    return std::nullopt;
  return in.substr(head_end + 4);
}

std::optional<json> node_status(const std::string& ws_url, std::chrono::milliseconds timeout) {
  std::string host;
  int port = 0;
  if (!split_url(ws_url, host, port))
    return std::nullopt;
  auto body = http_get(host, port, "/status", timeout);
  if (!body)
    return std::nullopt;
  try {
    auto j = json::parse(*body);
    if (j.is_object())
      return j;
  } catch (const json_error&) {
  }
  return std::nullopt;
}

std::vector<peer_status> status_peers(const json& status) {
  std::vector<peer_status> out;
  const json* peers = status.find("peers");
  if (!peers || !peers->is_array())
    return out;
  for (const auto& p : peers->as_array()) {
    peer_status s;
    if (const json* u = p.find("url"); u && u->is_string())
      s.url = u->as_string();
    if (const json* l = p.find("link"); l && l->is_string())
      s.up = l->as_string() == "up";
    s.functions = strings_of(p.find("functions"));
    s.resources = strings_of(p.find("resources"));
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<peer_status> status_peer(const json& status, const std::string& url) {
  for (auto& p : status_peers(status))
    if (p.url == url)
      return p;
  return std::nullopt;
}

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
              std::chrono::milliseconds every) {
  auto deadline = clock::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (clock::now() >= deadline)
      return pred();
    std::this_thread::sleep_for(every);
  }
}

bool converged(const std::vector<std::string>& urls, std::string* why) {
  auto fail = [&](std::string text) {
    if (why)
      *why = std::move(text);
    return false;
  };
  std::vector<json> views;
  for (const auto& u : urls) {
    auto s = node_status(u);
    if (!s)
      return fail(u + ": no answer to GET /status");
    views.push_back(std::move(*s));
  }
  for (std::size_t i = 0; i < urls.size(); ++i)
    for (std::size_t j = 0; j < urls.size(); ++j) {
      if (i == j)
        continue;
      auto p = status_peer(views[i], urls[j]);
      if (!p)
        return fail(urls[i] + " does not know " + urls[j]);
      if (!p->up)
        return fail(urls[i] + " has no live link to " + urls[j]);
      const json* self = views[j].find("node");
      if (!self)
        return fail(urls[j] + ": status has no \"node\"");
      auto funs = strings_of(self->find("functions"));
      if (!includes(p->functions, funs))
        return fail(urls[i] + " does not know every function of " + urls[j] + " (knows " +
                    join(p->functions) + "; it has " + join(funs) + ")");
      auto res = strings_of(self->find("resources"));
      if (!includes(p->resources, res))
        return fail(urls[i] + " does not know the resources of " + urls[j]);
    }
  if (why)
    why->clear();
  return true;
}

// -- cluster ------------------------------------------------------------------

struct cluster::member {
  cluster_node_spec spec;
  std::vector<std::string> args; // without --port
  std::unique_ptr<node_process> proc;
  std::string url;
  int port = 0;
};

cluster::cluster(cluster_options options, std::vector<cluster_node_spec> nodes)
  : opts_(std::move(options)) {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    auto m = std::make_unique<member>();
    m->spec = std::move(nodes[i]);
    if (m->spec.name.empty())
      m->spec.name = "node" + std::to_string(i);
    nodes_.push_back(std::move(m));
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    auto& m = *nodes_[i];
    auto& a = m.args;
    a = {"--name", m.spec.name, "--cluster-id", opts_.cluster_id, "--gossip-interval",
         std::to_string(opts_.gossip_interval), "--dead-peer-timeout",
         std::to_string(opts_.dead_peer_timeout)};
    if (!m.spec.resources.empty())
      a.insert(a.end(), {"--resources", join(m.spec.resources)});
    std::vector<std::string> peers;
    if (m.spec.peers) {
      for (auto j : *m.spec.peers) {
        if (j >= i)
          throw node_process_error("cluster: node " + std::to_string(i) +
                                   " may only name earlier nodes as peers");
        peers.push_back(nodes_[j]->url);
      }
    } else {
      for (std::size_t j = 0; j < i; ++j)
        peers.push_back(nodes_[j]->url);
    }
    peers.insert(peers.end(), m.spec.peer_urls.begin(), m.spec.peer_urls.end());
    if (!peers.empty())
      a.insert(a.end(), {"--peers", join(peers)});
    for (const auto& mod : opts_.modules)
      a.insert(a.end(), {"--module", mod});
    for (const auto& mod : m.spec.modules)
      a.insert(a.end(), {"--module", mod});
    a.insert(a.end(), opts_.extra_args.begin(), opts_.extra_args.end());
    a.insert(a.end(), m.spec.extra_args.begin(), m.spec.extra_args.end());
    start(i, 0);
  }
}

cluster::~cluster() = default;

void cluster::start(std::size_t i, int port) {
  auto& m = *nodes_[i];
  auto args = m.args;
  args.insert(args.begin(), {"--host", "127.0.0.1", "--port", std::to_string(port)});
  auto po = node_process::default_options();
  po.start_timeout = opts_.start_timeout;
  po.env = opts_.env;
  po.env.push_back("MPREG_TEST_NODE_NAME=" + m.spec.name);
  po.env.insert(po.env.end(), m.spec.env.begin(), m.spec.env.end());
  m.proc.reset(); // reaps a previous incarnation
  m.proc = std::make_unique<node_process>(opts_.node_exe, std::move(args), po);
  m.url = m.proc->url();
  m.port = m.proc->port();
}

std::size_t cluster::size() const {
  return nodes_.size();
}

const std::string& cluster::name(std::size_t i) const {
  return nodes_.at(i)->spec.name;
}

const std::string& cluster::url(std::size_t i) const {
  return nodes_.at(i)->url;
}

int cluster::port(std::size_t i) const {
  return nodes_.at(i)->port;
}

node_process& cluster::process(std::size_t i) {
  return *nodes_.at(i)->proc;
}

bool cluster::running(std::size_t i) {
  auto& m = *nodes_.at(i);
  return m.proc && m.proc->running();
}

std::vector<std::string> cluster::running_urls() {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (running(i))
      out.push_back(url(i));
  return out;
}

std::optional<json> cluster::status(std::size_t i, std::chrono::milliseconds timeout) const {
  return node_status(url(i), timeout);
}

bool cluster::wait_until_converged(std::chrono::milliseconds timeout,
                                   const std::vector<std::string>& extra_urls, std::string* why) {
  std::string last;
  bool ok = wait_for(
    [&] {
      auto urls = running_urls();
      urls.insert(urls.end(), extra_urls.begin(), extra_urls.end());
      return converged(urls, &last);
    },
    timeout, std::chrono::milliseconds(50));
  if (why)
    *why = last;
  return ok;
}

int cluster::kill(std::size_t i) {
  return nodes_.at(i)->proc->kill();
}

int cluster::terminate(std::size_t i, std::chrono::milliseconds deadline) {
  return nodes_.at(i)->proc->terminate(deadline);
}

void cluster::restart(std::size_t i) {
  auto& m = *nodes_.at(i);
  if (m.proc && m.proc->running())
    throw node_process_error("cluster: node " + m.spec.name + " is still running");
  // The port was ours a moment ago; the node binds with SO_REUSEADDR. Should
  // something else hold it right now, try again for a few seconds.
  auto deadline = clock::now() + std::chrono::seconds(5);
  for (;;) {
    try {
      start(i, m.port);
      return;
    } catch (const node_process_error&) {
      if (clock::now() >= deadline)
        throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

void cluster::restart(std::size_t i, std::vector<std::string> new_args) {
  nodes_.at(i)->args = std::move(new_args);
  restart(i);
}

const std::vector<std::string>& cluster::args(std::size_t i) const {
  return nodes_.at(i)->args;
}

} // namespace mpreg::test
