#include "util/cpus.hpp"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>
#include <vector>

namespace mpreg::util {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep))
    parts.push_back(part);
  return parts;
}

bool has(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// A mounted cgroup hierarchy: the cgroup at its root, and where it is.
struct mount {
  std::string root;
  std::string point;
};

// A quota and period (µs) as CPUs; nullopt for "max", -1 or nonsense.
std::optional<double> ratio(const std::string& quota, const std::string& period) {
  try {
    double q = std::stod(quota), p = std::stod(period);
    if (q > 0 && p > 0)
      return q / p;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

} // namespace

namespace detail {

std::optional<double> cgroup_cpu_limit(const std::string& proc_cgroup,
                                       const std::string& mountinfo,
                                       const std::function<std::string(const std::string&)>& read) {
  // mountinfo: "ID PARENT MAJ:MIN ROOT POINT OPTIONS... - FSTYPE SOURCE SUPEROPTS".
  std::optional<mount> v1, v2;
  for (const auto& line : split(mountinfo, '\n')) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos)
      continue;
    std::istringstream left(line.substr(0, dash)), right(line.substr(dash + 3));
    std::string id, parent, dev, root, point, fstype, source, superopts;
    if (!(left >> id >> parent >> dev >> root >> point) || !(right >> fstype >> source))
      continue;
    right >> superopts;
    if (fstype == "cgroup2")
      v2 = mount{root, point};
    else if (fstype == "cgroup" && has(split(superopts, ','), "cpu"))
      v1 = mount{root, point};
  }
  // /proc/self/cgroup: "ID:CONTROLLERS:PATH"; v2's line is "0::PATH".
  std::optional<std::string> v1_path, v2_path;
  for (const auto& line : split(proc_cgroup, '\n')) {
    auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos)
      continue;
    auto controllers = line.substr(first + 1, second - first - 1);
    auto path = line.substr(second + 1);
    if (line.compare(0, first, "0") == 0 && controllers.empty())
      v2_path = path;
    else if (has(split(controllers, ','), "cpu"))
      v1_path = path;
  }
  bool use_v1 = v1 && v1_path;
  if (!use_v1 && !(v2 && v2_path))
    return std::nullopt;
  const mount& m = use_v1 ? *v1 : *v2;
  const std::string& path = use_v1 ? *v1_path : *v2_path;
  // The cgroup's directory under the mount point. In a container the mount
  // often shows the container's own cgroup as its root: the path from
  // /proc/self/cgroup is then the root itself (or outside it, without a
  // cgroup namespace), and the mount point is the directory.
  std::string rel;
  if (m.root == "/")
    rel = path == "/" ? "" : path;
  else if (path.compare(0, m.root.size(), m.root) == 0 &&
           (path.size() == m.root.size() || path[m.root.size()] == '/'))
    rel = path.substr(m.root.size());
  std::optional<double> limit;
  // The tightest quota from the cgroup up to the mount point.
  for (std::string dir = m.point + rel;; dir = dir.substr(0, dir.rfind('/'))) {
    std::optional<double> here;
    if (use_v1) {
      here = ratio(trimmed(read(dir + "/cpu.cfs_quota_us")),
                   trimmed(read(dir + "/cpu.cfs_period_us")));
    } else {
      auto fields = split(trimmed(read(dir + "/cpu.max")), ' ');
      if (fields.size() == 2)
        here = ratio(fields[0], fields[1]); // "max 100000" is no limit
    }
    if (here && (!limit || *here < *limit))
      limit = here;
    if (dir.size() <= m.point.size() || dir.rfind('/') == std::string::npos)
      break;
  }
  return limit;
}

} // namespace detail

double cpu_capacity() {
  static const double capacity = [] {
    double cpus = std::max(1u, std::thread::hardware_concurrency());
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
      cpus = CPU_COUNT(&set);
    auto limit = detail::cgroup_cpu_limit(read_file("/proc/self/cgroup"),
                                          read_file("/proc/self/mountinfo"), read_file);
    if (limit)
      cpus = std::min(cpus, *limit);
    return std::max(1.0, cpus);
  }();
  return capacity;
}

unsigned usable_cpus() {
  return static_cast<unsigned>(std::ceil(cpu_capacity()));
}

} // namespace mpreg::util
