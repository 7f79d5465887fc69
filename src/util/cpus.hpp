// How much CPU this process may use: its affinity mask (taskset, cpusets)
// capped by a cgroup CPU quota (`docker run --cpus`, Kubernetes CPU limits).
// A container on a 64-core host with a 2-CPU quota sees 64 CPUs in
// std::thread::hardware_concurrency(); sizing threads by that only adds
// threads that share the same 2 CPUs' worth of time.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace mpreg::util {

/// The CPUs' worth of time this process may use, e.g. 1.5 under a quota of
/// 150 ms per 100 ms; at least 1. Read once, then cached.
double cpu_capacity();

/// cpu_capacity() rounded up: how many threads can run at once.
unsigned usable_cpus();

namespace detail {
/// The cgroup CPU limit in CPUs (quota / period, the smallest along the
/// cgroup's ancestors), from the text of /proc/self/cgroup and
/// /proc/self/mountinfo; `read` returns a control file's text (empty when
/// missing). nullopt when there is no limit. cgroup v1's cpu controller
/// wins over v2 when both are mounted (hybrid hosts: it is the one in use).
std::optional<double> cgroup_cpu_limit(const std::string& proc_cgroup,
                                       const std::string& mountinfo,
                                       const std::function<std::string(const std::string&)>& read);
} // namespace detail

} // namespace mpreg::util
