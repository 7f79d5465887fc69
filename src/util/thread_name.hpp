#pragma once
// Names the calling thread (shown by top -H, perf, gdb and /proc/PID/task).
// Threads otherwise inherit their creator's name, and CAF 0.17 names its
// workers "caf.multiplexer", so every thread of a node looked alike.

#include <pthread.h>

namespace mpreg::util {

/// `name`: at most 15 characters (Linux's limit; longer names are ignored).
inline void name_this_thread(const char* name) noexcept {
  pthread_setname_np(pthread_self(), name);
}

} // namespace mpreg::util
