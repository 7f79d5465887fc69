// The node's log: one line per event (listening, peers linked and lost,
// errors), process-wide, written to stderr unless a sink is set.
//
//   mpreg::set_log_level(mpreg::log_level::warn);          // quieter
//   mpreg::set_log_sink([](mpreg::log_level l, std::string_view line) {
//     my_logger.write(static_cast<int>(l), line);           // into your own log
//   });
#pragma once

#include <functional>
#include <string_view>

namespace mpreg {

/// Severity of a log line; a threshold lets through its level and those
/// above it (error is the most severe).
enum class log_level { error = 0, warn = 1, info = 2, debug = 3, trace = 4 };

/// The threshold for every node in the process. Default: info. mpreg-node's
/// --log-level sets this. Thread-safe.
void set_log_level(log_level level);

/// Receives each log line that passes the threshold: its level and its text
/// (no time stamp, no newline). Called on the node's threads, one line at a
/// time (calls are serialised); it must not block for long. It may log or
/// call set_log_sink itself; what it throws is dropped with its line.
using log_sink = std::function<void(log_level level, std::string_view line)>;

/// Replaces where lines go; an empty sink restores stderr (a UTC time stamp,
/// the level, the line). Thread-safe.
void set_log_sink(log_sink sink);

} // namespace mpreg
