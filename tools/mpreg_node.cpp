// mpreg-node: run one MPREG node (PROTOCOL.md "The mpreg-node command line").
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "config/node_options.hpp"
#include "mpreg/module.hpp"
#include "mpreg/node.hpp"
#include "mpreg_build_config.h"
#include "util/fd_limit.hpp"
#include "util/log.hpp"

namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "mpreg-node: %s\n", why.c_str());
  std::exit(2);
}

// Loads one module and lets it register its functions.
void load_module(const std::string& path, mpreg::node& node) {
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    die("cannot load module " + path + ": " + dlerror());
  using abi_fn = int (*)();
  using register_fn = void (*)(mpreg::node&);
  auto abi = reinterpret_cast<abi_fn>(dlsym(lib, "mpreg_module_abi"));
  auto reg = reinterpret_cast<register_fn>(dlsym(lib, "mpreg_module_register"));
  if (!abi || !reg)
    die("module " + path + " has no MPREG_MODULE entry point");
  if (abi() != MPREG_MODULE_ABI)
    die("module " + path + " was built for module ABI " + std::to_string(abi()) + ", this node has " +
        std::to_string(MPREG_MODULE_ABI));
  try {
    reg(node);
  } catch (const std::exception& e) {
    die("module " + path + " failed to register: " + e.what());
  }
  // The library stays loaded for the life of the process: its code is registered.
  MPREG_LOG(info, "loaded module " << path);
}

} // namespace

int main(int argc, char** argv) {
  // Signals are taken synchronously by this thread (sigwait), blocked from
  // the first instruction: a SIGTERM during start-up stops the node cleanly
  // (exit 0) once it has started, instead of killing it half-way. Every
  // thread started from here on inherits the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A closed stdout (`mpreg-node | head -1` once head exits) must not kill
  // the node: writes to it fail instead. Sockets never raise SIGPIPE here.
  signal(SIGPIPE, SIG_IGN);

  mpreg::config::node_options opts;
  try {
    opts = mpreg::config::parse_node_args(argc, argv);
  } catch (const std::exception& e) {
    die(std::string(e.what()) + " (see --help)");
  }
  if (opts.show_help || opts.show_version) {
    if (opts.show_help)
      std::fputs(mpreg::config::node_usage().c_str(), stdout);
    else
      std::printf("mpreg-node %s (MPREG 2.0 wire protocol, CAF 0.17)\n", MPREG_VERSION);
    if (std::fflush(stdout) != 0)
      die("cannot write to stdout");
    return 0;
  }
  mpreg::log::level level;
  if (!mpreg::log::parse_level(opts.log_level, level))
    die("unknown log level '" + opts.log_level + "'");
  mpreg::log::set_level(level);
  // Out of descriptors, websocketpp retries accept() at once, in a loop,
  // until one is free: take all the system allows.
  if (!mpreg::util::raise_fd_limit())
    MPREG_LOG(warn, "could not raise the open-file limit to its hard limit");

  caf::actor_system_config cfg; // never handed argv: our flags are not CAF's
  mpreg::tune_actor_system(cfg);   // scheduler threads and wake-ups (node.hpp)
  int exit_code = 0;
  {
    caf::actor_system system{cfg};
    {
      mpreg::node node{system, opts.node};
      for (const auto& path : opts.modules)
        load_module(path, node);
      std::string url;
      try {
        url = node.start();
      } catch (const std::exception& e) {
        die(e.what());
      }
      std::printf("mpreg-node listening on %s\n", url.c_str());
      if (std::fflush(stdout) != 0 || std::ferror(stdout))
        MPREG_LOG(warn, "could not write the ready line to stdout (closed?); serving anyway");

      int sig = 0;
      sigwait(&stop_signals, &sig);
      MPREG_LOG(info, "received " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", stopping");
      // A second signal, or a shutdown stuck for 10 s, ends the process at
      // once, still with exit code 0 (the one the contract gives SIGINT and
      // SIGTERM). A signal within a second of the first is the same request
      // delivered twice: `timeout`, shells and process managers often signal
      // both the process and its group.
      std::thread([stop_signals] {
        using clock = std::chrono::steady_clock;
        const auto first = clock::now();
        const auto give_up = first + std::chrono::seconds(10);
        for (;;) {
          auto left =
            std::chrono::duration_cast<std::chrono::nanoseconds>(give_up - clock::now()).count();
          if (left <= 0) {
            std::fputs("mpreg-node: shutdown took too long, exiting now\n", stderr);
            std::_Exit(0);
          }
          struct timespec limit {
            static_cast<time_t>(left / 1000000000), static_cast<long>(left % 1000000000)
          };
          siginfo_t info;
          if (sigtimedwait(&stop_signals, &info, &limit) > 0 &&
              clock::now() - first >= std::chrono::seconds(1)) {
            std::fputs("mpreg-node: second signal, exiting now\n", stderr);
            std::_Exit(0);
          }
        }
      }).detach();
      node.stop();
    }
  }
  return exit_code;
}
