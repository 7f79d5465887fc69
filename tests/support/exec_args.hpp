// argv and envp for execve, built before fork (between fork and exec only
// async-signal-safe calls are allowed): the one place the test helpers that
// start processes prepare them.
#pragma once

#include <unistd.h> // environ (with _GNU_SOURCE, which g++ defines)

#include <string>
#include <vector>

namespace mpreg::test {

class exec_args {
public:
  /// `exe` with `args`; this process's environment with each `env` entry
  /// ("KEY=value") replacing any variable of the same KEY, and without the
  /// variables named in `unset` ("KEY").
  exec_args(const std::string& exe, const std::vector<std::string>& args,
            const std::vector<std::string>& env = {}, const std::vector<std::string>& unset = {}) {
    argv_s_.push_back(exe);
    argv_s_.insert(argv_s_.end(), args.begin(), args.end());
    auto named = [](const std::string& var, const std::string& key) {
      return var.size() > key.size() && var.compare(0, key.size(), key) == 0 &&
             var[key.size()] == '=';
    };
    for (char** e = environ; e && *e; ++e) {
      std::string var = *e;
      bool drop = false;
      for (const auto& key : unset)
        drop = drop || named(var, key);
      for (const auto& extra : env)
        drop = drop || named(var, extra.substr(0, extra.find('=')));
      if (!drop)
        env_s_.push_back(std::move(var));
    }
    env_s_.insert(env_s_.end(), env.begin(), env.end());
    for (auto& a : argv_s_)
      argv_.push_back(a.data());
    argv_.push_back(nullptr);
    for (auto& e : env_s_)
      envp_.push_back(e.data());
    envp_.push_back(nullptr);
  }
  exec_args(const exec_args&) = delete;
  exec_args& operator=(const exec_args&) = delete;

  char* const* argv() const { return argv_.data(); }
  char* const* envp() const { return envp_.data(); }

private:
  std::vector<std::string> argv_s_, env_s_;
  std::vector<char*> argv_, envp_;
};

} // namespace mpreg::test
