#include "jobs/worker_pool.hpp"

#include <thread>
#include <vector>

#include "util/thread_name.hpp"

namespace mpreg {

// Shared with the threads: a detached thread still finishing a task after
// stop() keeps it alive.
struct worker_pool::state {
  std::mutex mutex;
  std::condition_variable wake;
  std::condition_variable all_done;
  std::deque<std::function<void()>> tasks;
  std::size_t core = 0;
  std::size_t max = 0;
  std::size_t threads = 0;
  std::size_t idle = 0;
  bool stopping = false;
  std::vector<std::thread> handles;
};

worker_pool::worker_pool(std::size_t core, std::size_t max) : s_(std::make_shared<state>()) {
  s_->core = core == 0 ? 1 : core;
  s_->max = max < s_->core ? s_->core : max;
  std::lock_guard guard{s_->mutex};
  for (std::size_t i = 0; i < s_->core; ++i) {
    ++s_->threads;
    s_->handles.emplace_back(run, s_);
  }
}

worker_pool::~worker_pool() {
  stop();
}

bool worker_pool::submit(std::function<void()> task) {
  bool wake = false;
  {
    std::lock_guard guard{s_->mutex};
    if (s_->stopping)
      return false;
    s_->tasks.push_back(std::move(task));
    if (s_->idle >= s_->tasks.size()) {
      wake = true;
    } else if (s_->threads < s_->max) {
      ++s_->threads;
      std::thread(run, s_).detach(); // elastic threads exit on their own
    }
  }
  // Signalled after unlocking: a thread woken while the mutex is still held
  // blocks on it and has to be woken a second time.
  if (wake)
    s_->wake.notify_one();
  return true;
}

void worker_pool::run(std::shared_ptr<state> s) {
  constexpr auto idle_exit = std::chrono::seconds{30};
  util::name_this_thread("mpreg.pool");
  std::unique_lock lock{s->mutex};
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
      auto task = std::move(s->tasks.front());
      s->tasks.pop_front();
      lock.unlock();
      task(); // tasks catch their own exceptions
      task = nullptr;
      lock.lock();
    }
  }
leave:
  --s->threads;
  s->all_done.notify_all();
}

void worker_pool::stop(std::chrono::milliseconds grace) {
  std::vector<std::thread> handles;
  {
    std::unique_lock lock{s_->mutex};
    if (s_->stopping && s_->handles.empty())
      return;
    s_->stopping = true;
    s_->tasks.clear();
    s_->wake.notify_all();
    s_->all_done.wait_for(lock, grace, [&] { return s_->threads == 0; });
    handles.swap(s_->handles);
  }
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
