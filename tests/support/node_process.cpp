#include "support/node_process.hpp"
#include "support/exec_args.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

namespace mpreg::test {

namespace {

using clock = std::chrono::steady_clock;

int status_code(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

std::string read_file_tail(const std::string& path, std::size_t max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return {};
  off_t size = ::lseek(fd, 0, SEEK_END);
  off_t start = size > static_cast<off_t>(max) ? size - static_cast<off_t>(max) : 0;
  ::lseek(fd, start, SEEK_SET);
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0)
      break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

} // namespace

struct node_process::impl {
  std::string exe;
  node_process_options opts;
  pid_t pid = -1;
  bool reaped = false;
  int exit_code = -1;
  int out_fd = -1; // read end of the child's stdout
  std::string stderr_path;
  std::string url;
  std::string line;
  int port = 0;

  mutable std::mutex m; // guards rest_out
  std::string rest_out;
  std::thread drainer;

  // Reaps without blocking; true once the child is gone.
  bool poll_exit() {
    if (reaped)
      return true;
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      reaped = true;
      exit_code = status_code(status);
    }
    return reaped;
  }

  int wait_until(clock::time_point deadline) {
    while (!poll_exit()) {
      if (clock::now() >= deadline)
        return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return exit_code;
  }

  int hard_kill() {
    if (!poll_exit()) {
      ::kill(pid, SIGKILL);
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      reaped = true;
      exit_code = status_code(status);
    }
    return exit_code;
  }

  std::string stderr_tail(std::size_t max) const {
    if (stderr_path.empty())
      return {};
    return read_file_tail(stderr_path, max);
  }

  [[noreturn]] void fail(const std::string& why, const std::string& partial_stdout) {
    std::string msg = "node process '" + exe + "' " + why;
    if (!partial_stdout.empty())
      msg += "\n--- stdout ---\n" + partial_stdout;
    std::string err = stderr_tail(4000);
    if (!err.empty())
      msg += "\n--- stderr (tail) ---\n" + err;
    throw node_process_error(msg);
  }

  void start(const std::vector<std::string>& args) {
    // Everything the child needs is prepared before fork: between fork and
    // exec only async-signal-safe calls are allowed.
    exec_args call(exe, args, opts.env);

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
      throw node_process_error(errno_text("pipe2"));
    int err_fd = -1;
    if (!opts.inherit_stderr) {
      const char* tmp = std::getenv("TMPDIR");
      std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/mpreg-node-stderr-XXXXXX";
      err_fd = ::mkostemp(templ.data(), O_CLOEXEC);
      if (err_fd < 0) {
        ::close(pipe_fds[0]);
        ::close(pipe_fds[1]);
        throw node_process_error(errno_text("mkostemp"));
      }
      stderr_path = templ;
    }
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = ::getpid();
    bool die_with_parent = opts.die_with_parent;
    const char* path = exe.c_str();

    pid = ::fork();
    if (pid < 0) {
      int saved = errno;
      ::close(pipe_fds[0]);
      ::close(pipe_fds[1]);
      if (err_fd >= 0)
        ::close(err_fd);
      if (null_fd >= 0)
        ::close(null_fd);
      errno = saved;
      throw node_process_error(errno_text("fork"));
    }
    if (pid == 0) {
      if (die_with_parent) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent)
          ::_exit(127);
      }
      // Default signal handling and mask for the node.
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      if (null_fd >= 0)
        ::dup2(null_fd, 0);
      ::dup2(pipe_fds[1], 1);
      if (err_fd >= 0)
        ::dup2(err_fd, 2);
      ::execve(path, call.argv(), call.envp());
      const char msg[] = "node_process: exec failed\n";
      ssize_t ignored = ::write(2, msg, sizeof msg - 1);
      (void)ignored;
      ::_exit(127);
    }
    ::close(pipe_fds[1]);
    if (err_fd >= 0)
      ::close(err_fd);
    if (null_fd >= 0)
      ::close(null_fd);
    out_fd = pipe_fds[0];
    wait_ready();
    drainer = std::thread([this] { drain(); });
  }

  void wait_ready() {
    auto deadline = clock::now() + opts.start_timeout;
    std::string buf;
    char chunk[4096];
    for (;;) {
      // Complete lines first.
      std::size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        std::string l = buf.substr(0, nl);
        if (!l.empty() && l.back() == '\r')
          l.pop_back();
        std::string seen = buf.substr(0, nl + 1);
        buf.erase(0, nl + 1);
        if (l.find(opts.ready_marker) == std::string::npos)
          continue;
        auto at = l.find("ws://");
        if (at == std::string::npos)
          at = l.find("wss://");
        if (at == std::string::npos)
          continue;
        line = l;
        url = l.substr(at);
        while (!url.empty() && (url.back() == ' ' || url.back() == '\t'))
          url.pop_back();
        auto colon = url.rfind(':');
        port = colon == std::string::npos ? 0 : std::atoi(url.c_str() + colon + 1);
        rest_out = buf;
        return;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
      if (left.count() <= 0) {
        hard_kill();
        fail("did not print its ready line within " + std::to_string(opts.start_timeout.count()) +
               " ms",
             buf);
      }
      pollfd p{out_fd, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
      if (r < 0 && errno != EINTR) {
        hard_kill();
        fail(errno_text("poll"), buf);
      }
      if (r <= 0)
        continue;
      ssize_t n = ::read(out_fd, chunk, sizeof chunk);
      if (n > 0) {
        buf.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      // EOF: the child closed stdout, most likely it exited.
      int code = wait_until(clock::now() + std::chrono::seconds(2));
      if (code < 0) {
        hard_kill();
        fail("closed its stdout before printing its ready line", buf);
      }
      fail("exited with status " + std::to_string(code) + " before printing its ready line", buf);
    }
  }

  // Keeps the child's stdout pipe flowing so it never blocks on a full pipe.
  void drain() {
    char chunk[4096];
    for (;;) {
      ssize_t n = ::read(out_fd, chunk, sizeof chunk);
      if (n > 0) {
        std::lock_guard<std::mutex> lock(m);
        if (rest_out.size() < (1u << 20))
          rest_out.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR)
        continue;
      return; // EOF: every copy of the write end is closed (child gone)
    }
  }

  ~impl() {
    if (pid > 0)
      hard_kill();
    // The child (and any grandchild holding its stdout) is gone: EOF follows.
    if (drainer.joinable())
      drainer.join();
    if (out_fd >= 0)
      ::close(out_fd);
    if (!stderr_path.empty())
      ::unlink(stderr_path.c_str());
  }
};

node_process_options node_process::default_options() {
  node_process_options o;
  if (const char* e = std::getenv("MPREG_TEST_NODE_STDERR"); e && std::string(e) == "inherit")
    o.inherit_stderr = true;
  return o;
}

node_process::node_process(std::string exe, std::vector<std::string> args,
                           node_process_options options)
  : impl_(std::make_unique<impl>()) {
  impl_->exe = std::move(exe);
  impl_->opts = std::move(options);
  impl_->start(args);
}

node_process::~node_process() = default;
node_process::node_process(node_process&&) noexcept = default;
node_process& node_process::operator=(node_process&&) noexcept = default;

const std::string& node_process::url() const {
  return impl_->url;
}

int node_process::port() const {
  return impl_->port;
}

pid_t node_process::pid() const {
  return impl_->pid;
}

const std::string& node_process::ready_line() const {
  return impl_->line;
}

bool node_process::running() {
  return !impl_->poll_exit();
}

int node_process::terminate(std::chrono::milliseconds deadline) {
  if (impl_->poll_exit())
    return impl_->exit_code;
  ::kill(impl_->pid, SIGTERM);
  int code = impl_->wait_until(clock::now() + deadline);
  if (code < 0)
    code = impl_->hard_kill();
  return code;
}

int node_process::kill() {
  return impl_->hard_kill();
}

int node_process::wait(std::chrono::milliseconds deadline) {
  return impl_->wait_until(clock::now() + deadline);
}

namespace {
// True when every thread of `pid` is stopped (state T in /proc/PID/task/*/stat).
bool all_threads_stopped(pid_t pid) {
  std::error_code ec;
  auto dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& t : std::filesystem::directory_iterator(dir, ec)) {
    std::ifstream in(t.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')'); // the name may hold spaces and parentheses
    if (close == std::string::npos || close + 2 >= stat.size())
      return false;
    char state = stat[close + 2];
    if (state != 'T' && state != 't')
      return false;
  }
  return !ec;
}
} // namespace

bool node_process::signal(int sig) {
  if (impl_->poll_exit())
    return false;
  if (::kill(impl_->pid, sig) != 0)
    return false;
  if (sig == SIGSTOP) {
    auto deadline = clock::now() + std::chrono::seconds(5);
    while (!all_threads_stopped(impl_->pid) && clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

std::string node_process::stderr_text(std::size_t max) const {
  return impl_->stderr_tail(max);
}

std::string node_process::stdout_text() const {
  std::lock_guard<std::mutex> lock(impl_->m);
  return impl_->rest_out;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw node_process_error(errno_text("socket"));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw node_process_error(errno_text("bind"));
  }
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

} // namespace mpreg::test
