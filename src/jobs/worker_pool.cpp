#include "jobs/worker_pool.hpp"

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

#include "jobs/fair_queue.hpp"
#include "util/cpus.hpp"
#include "util/thread_name.hpp"

namespace mpreg {

namespace {

// How often the pool checks whether its busy threads are blocked.
constexpr auto grow_interval = std::chrono::milliseconds{5};
// A busy thread that used less CPU than this share of an interval is taken
// as blocked (sleeping, waiting on I/O), not computing.
constexpr double blocked_below = 0.1;
// The pool's threads together using this share of every CPU: saturated.
constexpr double saturated = 0.75;

long long cpu_ns(clockid_t clock) {
  timespec ts{};
  if (clock_gettime(clock, &ts) != 0)
    return -1;
  return static_cast<long long>(ts.tv_sec) * 1'000'000'000LL + ts.tv_nsec;
}

} // namespace

// Shared with the threads: a detached thread still finishing a task after
// stop() keeps it alive.
struct worker_pool::state {
  struct worker {
    clockid_t clock{};
    bool has_clock = false;
    bool busy = false;
    long long cpu_ns = -1;    // CPU time at the grower's sample number `sample`
    std::uint64_t sample = 0; // 0: never sampled
  };

  std::mutex mutex;
  std::condition_variable wake;
  std::condition_variable all_done;
  std::condition_variable grow_wake;
  fair_queue tasks;
  std::size_t core = 0;
  std::size_t max = 0;
  std::size_t threads = 0;
  std::size_t idle = 0;
  bool stopping = false;
  std::vector<std::thread> handles;
  std::thread grower;
  std::uint64_t next_worker = 0;
  std::uint64_t sample = 1; // the grower's current sample number
  std::unordered_map<std::uint64_t, worker> workers;

  // False when the system refuses a thread (a pids or ulimit cap).
  bool start_thread(bool core_thread, const std::shared_ptr<state>& self) {
    auto id = next_worker++;
    workers.emplace(id, worker{});
    ++threads;
    try {
      if (core_thread)
        handles.emplace_back(run, self, id);
      else
        std::thread(run, self, id).detach(); // elastic threads exit on their own
      return true;
    } catch (const std::exception&) { // system_error (EAGAIN), bad_alloc
      workers.erase(id);
      --threads;
      return false;
    }
  }
};

worker_pool::worker_pool(std::size_t core, std::size_t max) : s_(std::make_shared<state>()) {
  s_->core = core == 0 ? 1 : core;
  s_->max = max < s_->core ? s_->core : max;
  std::lock_guard guard{s_->mutex};
  for (std::size_t i = 0; i < s_->core; ++i)
    if (!s_->start_thread(true, s_))
      break;
  if (s_->threads == 0)
    throw std::runtime_error("worker pool: cannot start a thread");
  s_->core = s_->threads; // as many as the system gave
  if (s_->max > s_->core) {
    try {
      s_->grower = std::thread(grow, s_);
    } catch (const std::exception&) {
      s_->max = s_->core; // no thread for growing: a fixed pool
    }
  }
}

worker_pool::~worker_pool() {
  stop();
}

bool worker_pool::submit(std::function<void()> task, const void* owner) {
  bool wake = false;
  bool queued = false;
  {
    std::lock_guard guard{s_->mutex};
    if (s_->stopping)
      return false;
    s_->tasks.push(owner, std::move(task));
    wake = s_->idle > 0;
    queued = s_->idle < s_->tasks.size();
  }
  // Signalled after unlocking: a thread woken while the mutex is still held
  // blocks on it and has to be woken a second time.
  if (wake)
    s_->wake.notify_one();
  if (queued)
    s_->grow_wake.notify_one();
  return true;
}

// Elastic, but only for blocking work. While tasks wait, once per interval
// (a submit does not shorten it): the busy threads that used (almost) no CPU
// since the last sample are blocked, so the CPU they leave is for new
// threads; threads that compute are not replaced. CPU-bound functions thus
// keep `core` threads (a flood of them no longer takes the node's I/O
// thread's CPU with hundreds of threads), while blocking ones get a thread
// each, the pool growing by half at most per interval, up to `max`.
void worker_pool::grow(std::shared_ptr<state> s) {
  util::name_this_thread("mpreg.poolgrow");
  using clock = std::chrono::steady_clock;
  std::unique_lock lock{s->mutex};
  auto last = clock::now();
  // Reads the busy threads' CPU clocks; returns how many computed since the
  // previous sample. A busy thread with no baseline from then (it was idle)
  // gets one now and counts as computing: growth needs proof of blocking.
  // Also false when the pool's threads used most of the machine's CPUs in
  // the window: more threads would only share the same CPUs (threads that
  // wait for a CPU also look idle one by one).
  const double cpus = util::cpu_capacity();
  auto sample = [&](bool judge) -> std::pair<std::size_t, bool> {
    auto now = clock::now();
    auto window_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count();
    last = now;
    std::uint64_t previous = s->sample++;
    std::size_t computing = 0;
    long long pool_cpu_ns = 0;
    for (auto& [id, w] : s->workers) {
      if (!w.busy || !w.has_clock)
        continue;
      long long cpu = cpu_ns(w.clock);
      bool known = w.sample == previous && w.cpu_ns >= 0 && cpu >= 0;
      if (known)
        pool_cpu_ns += cpu - w.cpu_ns;
      if (judge &&
          (!known || cpu - w.cpu_ns >= static_cast<long long>(blocked_below * window_ns)))
        ++computing;
      w.cpu_ns = cpu;
      w.sample = s->sample;
    }
    bool cpu_left = pool_cpu_ns < static_cast<long long>(saturated * cpus * window_ns);
    return {computing, cpu_left};
  };
  while (!s->stopping) {
    if (s->tasks.size() <= s->idle) {
      s->grow_wake.wait(lock);
      sample(false); // a fresh baseline: what ran before the wait says nothing
      continue;
    }
    if (s->threads >= s->max) { // no room: look again later, from a fresh baseline
      s->grow_wake.wait_for(lock, 20 * grow_interval);
      sample(false);
      continue;
    }
    const auto until = last + grow_interval;
    while (!s->stopping && clock::now() < until)
      s->grow_wake.wait_until(lock, until);
    if (s->stopping)
      break;
    auto [computing, cpu_left] = sample(true);
    if (s->tasks.size() <= s->idle || s->threads >= s->max || computing >= s->core || !cpu_left)
      continue; // nothing waits, no room, or the pool computes at full width
    std::size_t blocked = s->threads - s->idle - std::min(computing, s->threads - s->idle);
    std::size_t want = std::max(s->core - computing, blocked / 2);
    want = std::min({want, s->tasks.size() - s->idle, s->max - s->threads});
    for (std::size_t i = 0; i < want; ++i)
      if (!s->start_thread(false, s))
        break; // refused: try again next interval
  }
}

void worker_pool::run(std::shared_ptr<state> s, std::uint64_t id) {
  constexpr auto idle_exit = std::chrono::seconds{30};
  util::name_this_thread("mpreg.pool");
  clockid_t clock{};
  bool has_clock = pthread_getcpuclockid(pthread_self(), &clock) == 0;
  std::unique_lock lock{s->mutex};
  auto& me = s->workers.at(id);
  me.clock = clock;
  me.has_clock = has_clock;
  // Its own baseline for the grower's next sample.
  me.cpu_ns = has_clock ? cpu_ns(clock) : -1;
  me.sample = s->sample;
  for (;;) {
    while (s->tasks.empty() && !s->stopping) {
      ++s->idle;
      bool woke = s->wake.wait_for(lock, idle_exit, [&] { return !s->tasks.empty() || s->stopping; });
      --s->idle;
      if (!woke && s->threads > s->core)
        goto leave; // an extra thread that found no work
    }
    if (s->tasks.empty()) // stopping and drained
      break;
    {
      auto task = s->tasks.pop();
      me.busy = true;
      lock.unlock();
      task(); // tasks catch their own exceptions
      task = nullptr;
      lock.lock();
      me.busy = false;
    }
  }
leave:
  s->workers.erase(id);
  --s->threads;
  s->all_done.notify_all();
}

void worker_pool::stop(std::chrono::milliseconds grace) {
  std::vector<std::thread> handles;
  std::thread grower;
  {
    std::unique_lock lock{s_->mutex};
    if (s_->stopping && s_->handles.empty() && !s_->grower.joinable())
      return;
    s_->stopping = true;
    s_->tasks.clear();
    s_->wake.notify_all();
    s_->grow_wake.notify_all();
    s_->all_done.wait_for(lock, grace, [&] { return s_->threads == 0; });
    handles.swap(s_->handles);
    grower.swap(s_->grower);
  }
  if (grower.joinable())
    grower.join(); // it only waits on the mutex and its condition: quick
  for (auto& t : handles) {
    // Core threads that finished are joined; a stuck one is let go.
    std::unique_lock lock{s_->mutex};
    bool done = s_->threads == 0;
    lock.unlock();
    if (done)
      t.join();
    else
      t.detach();
  }
}

std::size_t worker_pool::threads() const {
  std::lock_guard guard{s_->mutex};
  return s_->threads;
}

} // namespace mpreg
