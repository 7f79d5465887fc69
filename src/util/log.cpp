#include "util/log.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace mpreg::log {

namespace {
std::atomic<int> threshold{static_cast<int>(level::info)};
std::mutex write_mutex; // also guards sink
mpreg::log_sink sink;
const char* names[] = {"error", "warn", "info", "debug", "trace"};
} // namespace

void set_level(level l) {
  threshold = static_cast<int>(l);
}

level current_level() {
  return static_cast<level>(threshold.load(std::memory_order_relaxed));
}

bool parse_level(const std::string& text, level& out) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "warning")
    t = "warn";
  for (int i = 0; i < 5; ++i)
    if (t == names[i]) {
      out = static_cast<level>(i);
      return true;
    }
  return false;
}

void write(level l, const std::string& message) {
  std::lock_guard guard{write_mutex};
  if (sink) {
    try {
      sink(l, message);
    } catch (...) {
      // A throwing sink loses its line, never the node's thread.
    }
    return;
  }
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::fprintf(stderr, "%s.%03dZ %-5s %s\n", stamp, static_cast<int>(ms), names[static_cast<int>(l)],
               message.c_str());
}

} // namespace mpreg::log

namespace mpreg {

void set_log_level(log_level l) {
  log::set_level(l);
}

void set_log_sink(log_sink s) {
  std::lock_guard guard{log::write_mutex};
  log::sink = std::move(s);
}

} // namespace mpreg
