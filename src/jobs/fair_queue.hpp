// The worker pool's queue: owners take turns, each owner's tasks in order.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <unordered_map>
#include <utility>

namespace mpreg {

/// Tasks queued per owner (a connection, say), served round-robin: the
/// owners with tasks waiting take turns, one task each, and each owner's
/// tasks come out in the order they went in. One owner's flood then delays
/// another owner's task by one task per waiting owner, not by the flood.
/// Not thread-safe: the pool holds its lock around it.
class fair_queue {
public:
  using task = std::function<void()>;

  void push(const void* owner, task t) {
    auto& q = queues_[owner];
    if (q.empty())
      turns_.push_back(owner);
    q.push_back(std::move(t));
    ++size_;
  }

  /// The next task; the queue must not be empty.
  task pop() {
    const void* owner = turns_.front();
    turns_.pop_front();
    auto it = queues_.find(owner);
    task t = std::move(it->second.front());
    it->second.pop_front();
    --size_;
    if (it->second.empty())
      queues_.erase(it); // an owner with nothing waiting costs nothing
    else
      turns_.push_back(owner);
    return t;
  }

  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }

  void clear() {
    queues_.clear();
    turns_.clear();
    size_ = 0;
  }

private:
  std::unordered_map<const void*, std::deque<task>> queues_;
  std::deque<const void*> turns_; // owners with tasks waiting, next first
  std::size_t size_ = 0;
};

} // namespace mpreg
