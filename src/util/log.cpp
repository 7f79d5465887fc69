#include "util/log.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>

namespace mpreg::log {

namespace {
std::atomic<int> threshold{static_cast<int>(level::info)};
std::mutex write_mutex;            // one stderr line at a time
std::mutex sink_mutex;             // guards sink (never held while it runs)
std::shared_ptr<mpreg::log_sink> sink;
std::recursive_mutex sink_calls;   // one sink call at a time; a sink may log or reset itself
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
  std::shared_ptr<mpreg::log_sink> to;
  {
    std::lock_guard guard{sink_mutex};
    to = sink;
  }
  if (to) {
    std::lock_guard calls{sink_calls};
    try {
      (*to)(l, message);
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
  std::lock_guard guard{write_mutex};
  std::fprintf(stderr, "%s.%03dZ %-5s %s\n", stamp, static_cast<int>(ms), names[static_cast<int>(l)],
               message.c_str());
}

} // namespace mpreg::log

namespace mpreg {

void set_log_level(log_level l) {
  log::set_level(l);
}

void set_log_sink(log_sink s) {
  auto next = s ? std::make_shared<log_sink>(std::move(s)) : nullptr;
  std::lock_guard guard{log::sink_mutex};
  log::sink = std::move(next);
}

} // namespace mpreg
