// Small helpers every end-to-end suite needs.
#pragma once

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "mpreg/messages.hpp"

namespace mpreg::test {

/// Milliseconds since t0 (for bounded waits and MESSAGEs).
inline double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/// The mpreg-node to test: $MPREG_TEST_NODE when set, else the one built.
inline std::string node_executable(const std::string& built) {
  if (const char* e = std::getenv("MPREG_TEST_NODE"); e && *e)
    return e;
  return built;
}

/// One command of a request, built in C++ (no kwargs).
inline command cmd(std::string name, std::string fun, json::array args = {},
                            std::vector<std::string> locs = {}) {
  command c;
  c.name = std::move(name);
  c.fun = std::move(fun);
  c.args = std::move(args);
  c.locs = std::move(locs);
  return c;
}

} // namespace mpreg::test
