// The job: the actor that hosts a request's run (jobs/request_run.hpp) while
// it waits on the worker pool, on peers or on its deadline, and answers once.
#pragma once

#include <cstddef>
#include <memory>

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "jobs/local_call.hpp"
#include "mpreg/node.hpp"

namespace mpreg {

struct node_context;
namespace bridge {
class outbound;
}

/// A command of the job has finished (sent by the worker pool or a peer link).
struct command_done {
  std::size_t index;
  call_outcome outcome;
};

using deadline_atom = caf::atom_constant<caf::atom("deadline")>;
// session -> job: the node is stopping; answer now (error 1002) -> true
using stopping_atom = caf::atom_constant<caf::atom("stopping")>;

} // namespace mpreg

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mpreg::command_done)

namespace mpreg {

using job_actor = caf::typed_actor<caf::replies_to<request>::with<response>,
                                   caf::reacts_to<command_done>, caf::reacts_to<deadline_atom>,
                                   caf::replies_to<stopping_atom>::with<bool>>;

/// Spawns a job; send it the request (request/delegate) and it answers once.
job_actor spawn_job(caf::actor_system& sys, std::shared_ptr<node_context> ctx);

/// Runs a request that arrived on a connection and writes its one answer to
/// `out`. A request whose every command is an inline function of this node
/// is answered right here, with no actor spawned (it never waits). Any other
/// gets a job actor that `session` monitors (its end is a down_msg there);
/// the session cancels the jobs it still has when it exits. Returns that
/// job, or an invalid handle when the request was answered in place.
///
/// Not a CAF link: unlinking scans the session's list of links, so a
/// connection with n requests in flight paid O(n) per finished job, O(n²)
/// in all, on the thread that also runs the node's I/O.
/// `waited`: seconds the request already waited for a slot (its deadline
/// comes that much sooner).
job_actor run_connection_request(caf::local_actor* session, std::shared_ptr<node_context> ctx,
                                 std::shared_ptr<bridge::outbound> out, request req,
                                 double waited = 0);

} // namespace mpreg
