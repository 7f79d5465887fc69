// Functions for the cluster tests, loaded with `mpreg-node --module PATH`.
// They tell the test which node ran a command: the node's name comes from
// the environment variable MPREG_TEST_NODE_NAME, read at call time (the
// cluster test helper sets it per node process).
//
//   whereami()              the node's name
//   mark(x)                 x + ":" + the node's name (pipelines: "in:A:B:C")
//   sleep_whereami(ms)      creates $MPREG_TEST_MARK_DIR/started-<name> (when
//                           set), sleeps ms milliseconds, returns the name
//   tagged()                the node's name; its own resources (fun_locs) are
//                           read from $MPREG_TEST_FUN_RESOURCES ("a,b") when
//                           the module is loaded
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <mpreg/module.hpp>

namespace {

std::string node_name() {
  const char* n = std::getenv("MPREG_TEST_NODE_NAME");
  return n && *n ? std::string(n) : std::string("?");
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s + ",") {
    if (c == ',') {
      if (!cur.empty())
        out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

} // namespace

MPREG_MODULE(node) {
  node.add_function("whereami", [] { return node_name(); });
  node.add_function("mark", [](const std::string& x) { return x + ":" + node_name(); });

  mpreg::function_options ms;
  ms.params = {"ms"};
  node.add_function("sleep_whereami", [](long long ms) {
    if (const char* dir = std::getenv("MPREG_TEST_MARK_DIR"); dir && *dir) {
      std::ofstream f(std::string(dir) + "/started-" + node_name(), std::ios::app);
      f << ms << "\n";
    }
    if (ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return node_name();
  }, ms);

  mpreg::function_options tagged;
  if (const char* r = std::getenv("MPREG_TEST_FUN_RESOURCES"))
    tagged.resources = split(r);
  node.add_function("tagged", [] { return node_name(); }, tagged);
}
