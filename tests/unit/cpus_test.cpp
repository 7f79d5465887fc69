// util/cpus: the CPU capacity a cgroup quota leaves, from the texts of
// /proc/self/cgroup and /proc/self/mountinfo as the kernel writes them.
#include <doctest/doctest.h>

#include <map>
#include <sched.h>

#include "util/cpus.hpp"

using mpreg::util::detail::cgroup_cpu_limit;

namespace {

// Control files by path; anything else is missing (empty).
struct files {
  std::map<std::string, std::string> by_path;
  std::string operator()(const std::string& path) const {
    auto f = by_path.find(path);
    return f == by_path.end() ? "" : f->second;
  }
};

const std::string v2_mount =
  "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
  "rw,nsdelegate,memory_recursiveprot\n";

} // namespace

TEST_CASE("cpus: cgroup v2 inside a container (its cgroup is the mount's root)") {
  files f{{{"/sys/fs/cgroup/cpu.max", "150000 100000\n"}}};
  auto limit = cgroup_cpu_limit("0::/\n", v2_mount, f);
  REQUIRE(limit);
  CHECK(*limit == doctest::Approx(1.5));
}

TEST_CASE("cpus: cgroup v2 on a host: the tightest quota among the ancestors") {
  files f{{{"/sys/fs/cgroup/system.slice/app.service/cpu.max", "max 100000\n"},
           {"/sys/fs/cgroup/system.slice/cpu.max", "200000 100000\n"},
           {"/sys/fs/cgroup/cpu.max", "max 100000\n"}}};
  auto limit = cgroup_cpu_limit("0::/system.slice/app.service\n", v2_mount, f);
  REQUIRE(limit);
  CHECK(*limit == doctest::Approx(2.0));
}

TEST_CASE("cpus: no quota anywhere, or no cgroup file system, is no limit") {
  files unlimited{{{"/sys/fs/cgroup/cpu.max", "max 100000\n"}}};
  CHECK_FALSE(cgroup_cpu_limit("0::/\n", v2_mount, unlimited));
  CHECK_FALSE(cgroup_cpu_limit("0::/\n", v2_mount, files{}));
  CHECK_FALSE(cgroup_cpu_limit("", "", files{}));
  files garbage{{{"/sys/fs/cgroup/cpu.max", "lots\n"}}};
  CHECK_FALSE(cgroup_cpu_limit("0::/\n", v2_mount, garbage));
}

TEST_CASE("cpus: cgroup v1's cpu controller (docker on a hybrid host) wins over v2") {
  std::string mountinfo =
    v2_mount +
    "35 30 0:31 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup "
    "rw,cpu,cpuacct\n"
    "36 30 0:32 /docker/abc /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n";
  files f{{{"/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "50000\n"},
           {"/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n"},
           {"/sys/fs/cgroup/cpu.max", "400000 100000\n"}}};
  // Without a cgroup namespace the path is the host's, the mount's root.
  auto limit = cgroup_cpu_limit("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n",
                                mountinfo, f);
  REQUIRE(limit);
  CHECK(*limit == doctest::Approx(0.5));
  // -1 is v1's "no quota".
  f.by_path["/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us"] = "-1\n";
  CHECK_FALSE(cgroup_cpu_limit("3:cpu,cpuacct:/docker/abc\n", mountinfo, f));
}

TEST_CASE("cpus: this process's capacity is at least 1 and within its affinity mask") {
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof(set), &set) == 0);
  CHECK(mpreg::util::cpu_capacity() >= 1.0);
  CHECK(mpreg::util::cpu_capacity() <= CPU_COUNT(&set));
  CHECK(mpreg::util::usable_cpus() >= 1u);
  CHECK(mpreg::util::usable_cpus() <= static_cast<unsigned>(CPU_COUNT(&set)));
}
