#include "transport/io_host.hpp"

#include <atomic>
#include <exception>
#include <utility>

#include "transport/io_loop.hpp"
#include "util/log.hpp"
#include "util/thread_name.hpp"

namespace mpreg::transport {

namespace {
// A handler that throws must not end the loop, nor the thread running it
// (a scheduler worker, when hosted): log it and keep serving everyone else.
// False when it threw.
template <class F>
bool guarded(F&& f) noexcept {
  try {
    f();
    return true;
  } catch (const std::exception& e) {
    MPREG_LOG(error, "I/O loop: " << e.what());
  } catch (...) {
    MPREG_LOG(error, "I/O loop: unknown exception");
  }
  return false;
}
} // namespace

io_host::io_host(std::string thread_name, std::chrono::microseconds spin)
  : inbox_(io_), thread_name_(std::move(thread_name)), spin_(spin) {}

io_host::~io_host() {
  stop();
}

void io_host::start(loop_runner* runner) {
  std::lock_guard<std::mutex> lock(m_);
  if (stopping_ || runner_ || thread_.joinable())
    return;
  if (runner && runner->host(*this)) {
    runner_ = runner;
    hosted_ = true;
    return;
  }
  thread_ = std::thread([this] { run_own_thread(); });
}

void io_host::to_own_thread() {
  std::lock_guard<std::mutex> lock(m_);
  if (stopping_ || !runner_)
    return;
  runner_->release(*this);
  runner_ = nullptr;
  hosted_ = false;
  thread_ = std::thread([this] { run_own_thread(); });
}

void io_host::stop() {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (stopping_.exchange(true))
      return;
    if (runner_) {
      runner_->release(*this);
      runner_ = nullptr;
      hosted_ = false;
    }
    io_.stop();
    if (thread_.joinable()) {
      if (thread_.get_id() == std::this_thread::get_id()) {
        // Only a bug gets here (the last owner let go inside a handler):
        // the thread ends after this handler, on an io_context that still
        // exists until this object is gone.
        MPREG_LOG(error, "I/O loop stopped from its own thread");
        thread_.detach();
      } else {
        thread_.join();
      }
    }
  }
  // What was handed over and never ran holds its connection: run it here
  // (its writes go nowhere) so that everything it holds is released.
  inbox_.close();
}

bool io_host::poll() {
  bool ran = inbox_.drain();
  if (io_.stopped()) {
    if (stopping_)
      return ran;
    io_.restart(); // ran out of work for a moment; the inbox re-arms it
  }
  // Bounded: asio's poll() goes on while new operations become ready, which
  // under load could keep the actors queued behind it waiting.
  guarded([&] {
    for (int n = 0; n < max_handlers_per_poll && io_.poll_one() > 0; ++n)
      ran = true;
  });
  return ran;
}

bool io_host::about_to_block() {
  if (!inbox_.about_to_sleep())
    return false; // inbox work is queued
  // Pairs with the fence in wake()'s exchange: either the other thread sees
  // this loop sleeping and writes the eventfd, or the caller's check that
  // follows sees its work.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (stopping_) {
    inbox_.awake();
    return false;
  }
  return true;
}

void io_host::block() {
  if (io_.stopped())
    io_.restart();
  guarded([&] { io_.run_one(); });
  inbox_.awake();
}

void io_host::run_own_thread() {
  util::name_this_thread(thread_name_.c_str());
  enter_loop();
  while (!guarded([this] { run_io(io_, inbox_, spin_); })) {
  }
  leave_loop();
}

} // namespace mpreg::transport
