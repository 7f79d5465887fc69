// Raises this process's open-file soft limit to its hard limit: every
// connection is a file descriptor, and the usual soft limit (1024) is far
// below what a node serves or a load generator opens, while the hard limit
// is what the administrator allows.
#pragma once

#include <sys/resource.h>

namespace mpreg::util {

/// False when the limit could not be raised (it stays as it was).
inline bool raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return false;
  if (rl.rlim_cur >= rl.rlim_max)
    return true;
  rl.rlim_cur = rl.rlim_max;
  return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

} // namespace mpreg::util
