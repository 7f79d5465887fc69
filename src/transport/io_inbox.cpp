#include "transport/io_inbox.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "util/log.hpp"

namespace mpreg::transport {

namespace {
int make_eventfd() {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  return fd;
}
} // namespace

io_inbox::io_inbox(asio::io_context& io) : fd_(make_eventfd()), wake_(io, fd_) {
  wait_for_wake();
}

io_inbox::~io_inbox() = default; // wake_ closes the eventfd

void io_inbox::wait_for_wake() {
  // async_wait, not async_read: a read would be retried at once on re-arm,
  // a system call that always finds nothing.
  wake_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const asio::error_code& ec) {
    if (ec)
      return; // closed (or the io_context is going away)
    std::uint64_t count = 0;
    [[maybe_unused]] auto n = ::read(fd_, &count, sizeof count);
    drain();
    wait_for_wake();
  });
}

bool io_inbox::push(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_)
      return false;
    queue_.push_back(std::move(fn));
    queued_.store(true, std::memory_order_relaxed);
  }
  // Pairs with about_to_sleep: either the I/O thread sees this item before it
  // sleeps, or this sees it sleeping and wakes it.
  wake();
  return true;
}

void io_inbox::wake() {
  // One write is enough until the thread is awake again.
  if (sleeping_.exchange(false, std::memory_order_seq_cst)) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
  }
}

bool io_inbox::drain() {
  if (!queued_.load(std::memory_order_relaxed))
    return false;
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(m_);
    batch.swap(queue_);
    queued_.store(false, std::memory_order_relaxed);
  }
  for (auto& fn : batch) {
    try {
      fn();
    } catch (const std::exception& e) {
      MPREG_LOG(error, "I/O thread task failed: " << e.what());
    } catch (...) {
      MPREG_LOG(error, "I/O thread task failed");
    }
  }
  bool ran = !batch.empty();
  batch.clear();
  // Hand the capacity back: the next burst need not allocate.
  std::lock_guard<std::mutex> lock(m_);
  if (queue_.empty())
    queue_.swap(batch);
  return ran;
}

bool io_inbox::about_to_sleep() {
  sleeping_.store(true, std::memory_order_seq_cst);
  std::lock_guard<std::mutex> lock(m_);
  if (queue_.empty())
    return true;
  sleeping_.store(false, std::memory_order_seq_cst);
  return false;
}

void io_inbox::close() {
  {
    std::lock_guard<std::mutex> lock(m_);
    closed_ = true;
  }
  drain(); // what was pushed before still runs
  // Cancel, not close: a push that got in before `closed_` may still write
  // the eventfd after this, and a closed descriptor's number may by then
  // belong to another file. The destructor closes it.
  asio::error_code ignored;
  wake_.cancel(ignored);
}

} // namespace mpreg::transport
