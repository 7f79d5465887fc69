#include "jobs/job_actor.hpp"

#include <atomic>
#include <stdexcept>
#include <string>

#include <caf/all.hpp>

#include "bridge/ws_server.hpp"
#include "jobs/request_run.hpp"
#include "node/node_context.hpp"
#include "peers/cluster_messages.hpp"
#include "protocol/codec.hpp"

namespace mpreg {

namespace {

struct job_state;
using job_pointer = job_actor::stateful_pointer<job_state>;

// The job actor is where a request's waiting happens: pool results, peer
// answers and the deadline arrive in its mailbox and drive its request_run.
class actor_host final : public request_run::host {
public:
  explicit actor_host(job_pointer self) : self_(self) {}
  void answer(response r) override;
  bool writes_frames() const override;
  void answer_frame(std::string frame) override;
  void run_remote(std::size_t i, const route& target, protocol::internal_rpc call) override;
  bool run_on_pool(std::size_t i, std::shared_ptr<const local_function> f, json::array args,
                   json::object kwargs) override;
  void arm_deadline(caf::timespan after) override;

private:
  void done();
  job_pointer self_;
};

struct job_state {
  static inline const char* name = "mpreg.job";

  std::shared_ptr<node_context> ctx;
  /// Set for a connection's job: the answer is written here, encoded once.
  /// Unset for in-process jobs: the answer goes through `promise`.
  std::shared_ptr<bridge::outbound> out;
  caf::typed_response_promise<response> promise;
  std::unique_ptr<actor_host> host;
  std::unique_ptr<request_run> run;
  // CAF shuts down an actor nobody references. While commands run on the
  // pool or on peers (which hold only weak handles) the job holds itself.
  caf::strong_actor_ptr keep_alive;
  // Set when the job ends (answered, cancelled or timed out): its pool tasks
  // that have not started yet are skipped instead of run for nobody.
  std::shared_ptr<std::atomic<bool>> ended;

  ~job_state() {
    if (ended)
      ended->store(true);
  }
};

void actor_host::answer(response r) {
  self_->state.promise.deliver(std::move(r));
  done();
}

bool actor_host::writes_frames() const {
  return self_->state.out != nullptr;
}

void actor_host::answer_frame(std::string frame) {
  self_->state.out->send(std::move(frame));
  done();
}

void actor_host::done() {
  self_->state.keep_alive = nullptr;
  // Functions still running on the pool finish into a dead mailbox.
  self_->quit();
}

void actor_host::run_remote(std::size_t i, const route& target, protocol::internal_rpc call) {
  auto self = self_;
  self->request(target.link, caf::infinite, forward_atom::value, std::move(call))
    .then([self, i](call_outcome& out) { self->state.run->remote_done(i, std::move(out)); },
          [self, i, url = target.url](caf::error&) { self->state.run->remote_lost(i, url); });
}

// Tells a job that its pool task was dropped without running (the pool
// stopped with it queued), when the last copy of the task goes: otherwise
// the job, which holds itself alive, would wait for ever, and with it the
// actor system's destructor.
struct drop_notice {
  caf::weak_actor_ptr job;
  std::size_t index;
  std::atomic<bool> armed{false};
  drop_notice(caf::weak_actor_ptr j, std::size_t i) : job(std::move(j)), index(i) {}
  ~drop_notice() {
    if (!armed.load())
      return;
    if (auto strong = job.lock())
      caf::anon_send(caf::actor_cast<job_actor>(strong),
                     command_done{index, call_outcome{json{}, node_stopping_error()}});
  }
};

bool actor_host::run_on_pool(std::size_t i, std::shared_ptr<const local_function> f,
                             json::array args, json::object kwargs) {
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(self_);
  auto& ended = self_->state.ended;
  if (!ended)
    ended = std::make_shared<std::atomic<bool>>(false);
  auto notice = std::make_shared<drop_notice>(weak, i);
  notice->armed.store(true);
  // The pool serves owners in turn: a connection's jobs (and the calls its
  // peer forwards, session_actor.cpp) share one owner, so a client flooding
  // the pool holds up another's calls by a task at a time, not by its flood.
  // An in-process request is an owner of its own.
  const void* owner = self_->state.out ? static_cast<const void*>(self_->state.out.get())
                                       : static_cast<const void*>(self_);
  bool queued = self_->state.ctx->pool.submit(
    [weak, ended, notice, i, f = std::move(f), args = std::move(args),
     kwargs = std::move(kwargs)]() mutable {
      notice->armed.store(false);
      if (ended->load())
        return;
      auto out = invoke_function(*f, args, kwargs);
      if (auto strong = weak.lock())
        caf::anon_send(caf::actor_cast<job_actor>(strong), command_done{i, std::move(out)});
    },
    owner);
  // A refused task is failed by the caller (this copy outlives the task's).
  if (!queued)
    notice->armed.store(false);
  return queued;
}

void actor_host::arm_deadline(caf::timespan after) {
  self_->delayed_send(self_, after, deadline_atom::value);
}

void start(job_pointer self, request req, double waited = 0) {
  auto& st = self->state;
  st.keep_alive = caf::actor_cast<caf::strong_actor_ptr>(self);
  st.host = std::make_unique<actor_host>(self);
  st.run = std::make_unique<request_run>(st.ctx, *st.host);
  st.run->start(std::move(req), waited);
}

job_actor::behavior_type job_handlers(job_pointer self) {
  return {
    [self](request& req) -> caf::typed_response_promise<response> {
      auto& st = self->state;
      st.promise = self->make_response_promise<response>();
      start(self, std::move(req));
      return st.promise;
    },
    [self](command_done& done) {
      if (auto& run = self->state.run)
        run->local_done(done.index, std::move(done.outcome));
    },
    [self](deadline_atom) {
      if (auto& run = self->state.run)
        run->deadline();
    },
    [self](stopping_atom) {
      if (auto& run = self->state.run)
        run->stopping();
      return true;
    },
  };
}

// In-process: waits for the request message (sent with request/delegate).
job_actor::behavior_type job_behavior(job_pointer self, std::shared_ptr<node_context> ctx) {
  self->state.ctx = std::move(ctx);
  return job_handlers(self);
}

// A connection's job starts with its request in hand (spawn arguments are no
// message): commands that need no waiting run before this returns.
job_actor::behavior_type connection_job_behavior(job_pointer self,
                                                 std::shared_ptr<node_context> ctx,
                                                 std::shared_ptr<bridge::outbound> out,
                                                 request req, double waited) {
  self->state.ctx = std::move(ctx);
  self->state.out = std::move(out);
  start(self, std::move(req), waited);
  return job_handlers(self);
}

} // namespace

job_actor spawn_job(caf::actor_system& sys, std::shared_ptr<node_context> ctx) {
  return sys.spawn(job_behavior, std::move(ctx));
}

namespace {

// An inline-only run never waits: only its answer reaches the host.
class connection_answer final : public request_run::host {
public:
  explicit connection_answer(bridge::outbound& out) : out_(out) {}
  void answer(response) override { never("answered without a frame"); }
  bool writes_frames() const override { return true; }
  void answer_frame(std::string frame) override { out_.send(std::move(frame)); }
  void run_remote(std::size_t, const route&, protocol::internal_rpc) override {
    never("tried to wait for a peer");
  }
  bool run_on_pool(std::size_t, std::shared_ptr<const local_function>, json::array,
                   json::object) override {
    never("tried to wait for the pool");
  }
  void arm_deadline(caf::timespan) override { never("tried to arm a deadline"); }

private:
  [[noreturn]] static void never(const char* what) {
    throw std::logic_error(std::string("an inline-only run ") + what);
  }
  bridge::outbound& out_;
};

} // namespace

job_actor run_connection_request(caf::local_actor* session, std::shared_ptr<node_context> ctx,
                                 std::shared_ptr<bridge::outbound> out, request req,
                                 double waited) {
  if (request_run::runs_inline_here(*ctx, req)) {
    connection_answer host{*out};
    request_run run(std::move(ctx), host, true);
    run.start(std::move(req), waited);
    return {};
  }
  auto job = session->spawn(connection_job_behavior, std::move(ctx), std::move(out),
                            std::move(req), waited);
  session->monitor(job);
  return job;
}

} // namespace mpreg
