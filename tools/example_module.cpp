// An example module for `mpreg-node --module`: build it as a shared library
// against the mpreg headers and name it on the command line.
#include <algorithm>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include <mpreg/module.hpp>

MPREG_MODULE(node) {
  // Typed functions: arguments and results convert from and to JSON.
  mpreg::function_options add_opts;
  add_opts.params = {"a", "b"}; // callers may also pass {"a": 1, "b": 2}
  node.add_function("add", [](double a, double b) { return a + b; }, add_opts);

  node.add_function("word_count", [](const std::string& text) {
    std::map<std::string, int> counts;
    std::string word;
    for (char c : text + " ") {
      if (c == ' ' || c == '\n' || c == '\t') {
        if (!word.empty())
          ++counts[word];
        word.clear();
      } else {
        word += c;
      }
    }
    return counts;
  });

  // A function that needs a resource: it runs only where "dataset-1" is.
  mpreg::function_options data_opts;
  data_opts.resources = {"dataset-1"};
  node.add_function("dataset_sum", [](std::vector<double> xs) {
    return std::accumulate(xs.begin(), xs.end(), 0.0);
  }, data_opts);
}
