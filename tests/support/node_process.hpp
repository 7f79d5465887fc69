// Test support: runs a node (or any server that announces itself on stdout)
// as a child process.
//
//   mpreg::test::node_process node(MPREG_NODE_PATH, {"--port", "0"});
//   mpreg::client c(node.url());
//   ...
//   CHECK(node.terminate() == 0);   // SIGTERM, wait with a deadline
//
// The constructor returns once the child printed its ready line
// ("... listening on ws://HOST:PORT") and throws node_process_error when the
// child exits first or does not get there in time; the error's text carries
// the tail of the child's stderr. The destructor SIGKILLs whatever is still
// running, so a failing test never leaves a node behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mpreg::test {

/// The child did not start (exec failed, exited early, timed out).
class node_process_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct node_process_options {
  /// How long the child may take to print its ready line.
  std::chrono::milliseconds start_timeout{15000};
  /// The ready line is the first stdout line containing this text; the URL
  /// is read from its "ws://" (or "wss://") part to the end of the line.
  std::string ready_marker = " listening on ";
  /// true: the child's stderr goes to ours (visible in test logs).
  /// false: it goes to a temporary file (see stderr_text()), removed by the
  /// destructor. The default follows $MPREG_TEST_NODE_STDERR=inherit.
  bool inherit_stderr = false;
  /// Ask the kernel to SIGKILL the child if the thread that started it
  /// dies (also when the test process crashes). Start nodes from a thread
  /// that outlives them (e.g. the test's main thread) when this is on.
  bool die_with_parent = true;
  /// Extra environment entries "KEY=VALUE" for the child (on top of ours).
  std::vector<std::string> env;
};

class node_process {
public:
  /// Starts `exe` with `args` and waits for the ready line.
  node_process(std::string exe, std::vector<std::string> args,
               node_process_options options = default_options());
  /// SIGKILLs the child if it still runs, reaps it, removes the stderr file.
  ~node_process();
  node_process(const node_process&) = delete;
  node_process& operator=(const node_process&) = delete;
  node_process(node_process&&) noexcept;
  node_process& operator=(node_process&&) noexcept;

  /// The URL from the ready line, e.g. "ws://127.0.0.1:40123".
  const std::string& url() const;
  /// The port of url().
  int port() const;
  /// The child's process id (still valid after it exited, until destruction).
  pid_t pid() const;
  /// The whole ready line.
  const std::string& ready_line() const;

  /// True while the child has not exited.
  bool running();
  /// SIGTERM, then waits up to `deadline`; if the child is still running
  /// then, SIGKILL. Returns the exit code (128+N when killed by signal N).
  /// Returns the recorded status again if the child was already reaped.
  int terminate(std::chrono::milliseconds deadline = std::chrono::seconds(10));
  /// SIGKILL and reap. Returns 128+9 (or the earlier exit status).
  int kill();
  /// Waits up to `deadline` for the child to exit on its own; the exit
  /// code, or -1 when it is still running.
  int wait(std::chrono::milliseconds deadline);
  /// Sends any signal (e.g. SIGSTOP to freeze a node); false when gone.
  /// SIGSTOP returns once every thread of the child is stopped (bounded,
  /// 5 s): kill() only queues it, and a thread running on another core may
  /// still answer a frame sent right after.
  bool signal(int sig);

  /// The child's stderr so far (empty when inherited); at most `max` bytes
  /// from the end.
  std::string stderr_text(std::size_t max = 1 << 20) const;
  /// What the child printed on stdout after the ready line, so far.
  std::string stdout_text() const;

  /// Options from the environment: $MPREG_TEST_NODE_STDERR=inherit sets
  /// inherit_stderr.
  static node_process_options default_options();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// A TCP port that was free a moment ago on 127.0.0.1 (bind to 0, read, close).
int free_port();

} // namespace mpreg::test
