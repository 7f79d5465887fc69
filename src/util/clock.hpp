// Wall-clock seconds since the Unix epoch, as gossip's last_seen uses them.
#pragma once

#include <chrono>

namespace mpreg {

inline double wall_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

} // namespace mpreg
