// Minimal leveled logging to stderr (stdout belongs to the tools' output).
#pragma once

#include <sstream>
#include <string>

#include "mpreg/log.hpp"

namespace mpreg::log {

using level = mpreg::log_level;

void set_level(level l);
level current_level();
/// Parses error|warn|info|debug|trace (case-insensitive); false if unknown.
bool parse_level(const std::string& text, level& out);
void write(level l, const std::string& message);

} // namespace mpreg::log

// Builds the message only when the level is enabled.
#define MPREG_LOG(lvl, expr)                                                                     \
  do {                                                                                           \
    if (static_cast<int>(::mpreg::log::level::lvl) <=                                            \
        static_cast<int>(::mpreg::log::current_level())) {                                       \
      std::ostringstream mpreg_log_os_;                                                          \
      mpreg_log_os_ << expr;                                                                     \
      ::mpreg::log::write(::mpreg::log::level::lvl, mpreg_log_os_.str());                        \
    }                                                                                            \
  } while (false)
