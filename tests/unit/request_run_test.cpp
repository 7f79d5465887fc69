// request_run, the engine of one request, driven by a host that records what
// the run asks of it: the tests play the worker pool, the peers and the clock.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include <caf/all.hpp>

#include "jobs/request_run.hpp"
#include "json/size_estimate.hpp"
#include "node/node_context.hpp"
#include "protocol/codec.hpp"

using namespace mpreg;
using namespace std::string_literals;

namespace {

struct recording_host final : request_run::host {
  std::vector<response> answers;
  struct pool_call {
    std::size_t index;
    json::array args;
  };
  std::vector<pool_call> pool;
  struct remote_call {
    std::size_t index;
    std::string url;
    protocol::internal_rpc call;
  };
  std::vector<remote_call> remote;
  std::vector<caf::timespan> deadlines;

  void answer(response r) override { answers.push_back(std::move(r)); }
  void run_remote(std::size_t i, const route& target, protocol::internal_rpc call) override {
    remote.push_back({i, target.url, std::move(call)});
  }
  bool run_on_pool(std::size_t i, std::shared_ptr<const local_function>, json::array args,
                   json::object) override {
    pool.push_back({i, std::move(args)});
    return true;
  }
  void arm_deadline(caf::timespan after) override { deadlines.push_back(after); }
};

// Writes its answer as a frame, as the hosts of a connection's requests do.
struct frame_host final : request_run::host {
  std::vector<std::string> frames;
  bool answered_as_response = false;

  void answer(response) override { answered_as_response = true; }
  bool writes_frames() const override { return true; }
  void answer_frame(std::string frame) override { frames.push_back(std::move(frame)); }
  void run_remote(std::size_t, const route&, protocol::internal_rpc) override {}
  bool run_on_pool(std::size_t, std::shared_ptr<const local_function>, json::array,
                   json::object) override {
    return false;
  }
  void arm_deadline(caf::timespan) override {}
};

// Handles die before the system: members are destroyed in reverse order.
struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::actor link1;
  caf::actor link2;
  std::shared_ptr<node_context> ctx;
  recording_host host;

  static caf::actor_system_config& configure(caf::actor_system_config& c) {
    c.set("scheduler.max-threads", std::size_t{1});
    return c;
  }

  explicit fixture(std::size_t max_message_size = settings{}.max_message_size)
    : sys(configure(cfg)) {
    auto idle = [](caf::event_based_actor*) -> caf::behavior { return {[](int) {}}; };
    link1 = sys.spawn(idle);
    link2 = sys.spawn(idle);
    settings s;
    s.worker_threads = 1;
    s.max_message_size = max_message_size;
    ctx = std::make_shared<node_context>(sys, s);
    add_builtins(ctx->functions);
    // "slow" runs on the pool (not inline).
    ctx->functions.add(local_function{
      "slow", [](const json::array& a, const json::object&) { return json{a}; }, {}, false});
  }
  ~fixture() {
    ctx.reset();
    caf::anon_send_exit(link1, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(link2, caf::exit_reason::user_shutdown);
  }

  void peer(const std::string& url, const caf::actor& link, std::vector<std::string> funs) {
    protocol::node_advert a;
    a.funs = std::move(funs);
    a.cluster_id = ctx->config.cluster_id;
    ctx->routes.hello(url, a, 1.0);
    ctx->routes.set_link(url, link);
  }
};

request make_request(std::string_view text) {
  auto in = protocol::decode(text);
  REQUIRE(std::holds_alternative<request>(in));
  return std::get<request>(in);
}

} // namespace

TEST_CASE("request_run: a request of inline functions answers inside start()") {
  fixture f;
  auto req = make_request(R"({"role":"rpc","u":"r1","cmds":[
      {"name":"a","fun":"echo","args":["x"]},
      {"name":"b","fun":"echos","args":["a","y"]}]})");
  REQUIRE(request_run::runs_inline_here(*f.ctx, req));
  request_run run(f.ctx, f.host, true);
  run.start(std::move(req));
  CHECK(run.answered());
  REQUIRE(f.host.answers.size() == 1);
  CHECK(f.host.answers[0].u == "r1");
  CHECK(*f.host.answers[0].r == json::parse(R"({"b":["x","y"]})"));
  CHECK(f.host.pool.empty());
  CHECK(f.host.remote.empty());
  CHECK(f.host.deadlines.empty()); // nothing to wait for

  CHECK_FALSE(request_run::runs_inline_here(
    *f.ctx, make_request(R"({"role":"rpc","u":"r","cmds":[{"name":"a","fun":"slow"}]})")));
  CHECK_FALSE(request_run::runs_inline_here(
    *f.ctx, make_request(R"({"role":"rpc","u":"r","cmds":[{"name":"a","fun":"nope"}]})")));
}

TEST_CASE("request_run: pool results arriving out of order release their consumers (dataflow)") {
  fixture f;
  request_run run(f.ctx, f.host);
  run.start(make_request(R"({"role":"rpc","u":"r2","timeout":1.5,"cmds":[
      {"name":"a","fun":"slow","args":[1]},
      {"name":"b","fun":"slow","args":[2]},
      {"name":"c","fun":"slow","args":["a","b"]},
      {"name":"d","fun":"echo","args":["b"]}]})"));
  REQUIRE(f.host.deadlines.size() == 1);
  // The timeout, less the moment the graph took to build.
  CHECK(f.host.deadlines[0] <= std::chrono::milliseconds(1500));
  CHECK(f.host.deadlines[0] > std::chrono::milliseconds(1000));
  REQUIRE(f.host.pool.size() == 2); // a and b; c and d wait for them
  CHECK_FALSE(run.answered());
  run.local_done(1, call_outcome{json(20), std::nullopt}); // b first
  // d (inline) ran at once with b's result; c still waits for a.
  REQUIRE(f.host.pool.size() == 2);
  run.local_done(0, call_outcome{json(10), std::nullopt});
  REQUIRE(f.host.pool.size() == 3);
  CHECK(f.host.pool[2].index == 2);
  CHECK(json{f.host.pool[2].args} == json::parse("[10,20]"));
  CHECK_FALSE(run.answered());
  run.local_done(2, call_outcome{json("done"), std::nullopt});
  REQUIRE(f.host.answers.size() == 1);
  CHECK(*f.host.answers[0].r == json::parse(R"({"c":"done","d":20})"));
  // Late reports after the answer change nothing.
  run.local_done(2, call_outcome{json("again"), std::nullopt});
  run.deadline();
  CHECK(f.host.answers.size() == 1);
}

TEST_CASE("request_run: a failing command answers its error once, naming the command") {
  fixture f;
  request_run run(f.ctx, f.host);
  run.start(make_request(R"({"role":"rpc","u":"r3","cmds":[
      {"name":"a","fun":"slow"},{"name":"b","fun":"slow"}]})"));
  REQUIRE(f.host.pool.size() == 2);
  run.local_done(0, call_outcome{json{}, rpc_error(error_code::execution_failed, "boom")});
  run.local_done(1, call_outcome{json(1), std::nullopt});
  REQUIRE(f.host.answers.size() == 1);
  REQUIRE(f.host.answers[0].error);
  CHECK(f.host.answers[0].error->code == 1003);
  CHECK(f.host.answers[0].error->details == json::parse(R"({"command":"a","function":"slow"})"));
}

TEST_CASE("request_run: the deadline answers 1007 listing the commands not finished") {
  fixture f;
  request_run run(f.ctx, f.host);
  run.start(make_request(R"({"role":"rpc","u":"r4","timeout":0.25,"cmds":[
      {"name":"a","fun":"slow"},{"name":"b","fun":"slow"}]})"));
  run.local_done(0, call_outcome{json(1), std::nullopt});
  run.deadline();
  REQUIRE(f.host.answers.size() == 1);
  CHECK(f.host.answers[0].error->code == 1007);
  CHECK(f.host.answers[0].error->details ==
        json::parse(R"({"timeout":0.25,"pending":["b"]})"));
}

TEST_CASE("request_run: inline commands stop at the deadline; no timer could interrupt them") {
  fixture f;
  // An inline function that takes 20 ms: a chain of 50 takes a second.
  f.ctx->functions.add(local_function{"nap",
                                      [](const json::array& a, const json::object&) {
                                        std::this_thread::sleep_for(std::chrono::milliseconds(20));
                                        return a.empty() ? json{} : a[0];
                                      },
                                      {}, true});
  std::string cmds = R"({"name":"c0","fun":"nap","args":[0]})";
  for (int i = 1; i < 50; ++i)
    cmds += R"(,{"name":"c)" + std::to_string(i) + R"(","fun":"nap","args":["c)" +
            std::to_string(i - 1) + R"("]})";
  auto req = make_request(R"({"role":"rpc","u":"r","timeout":0.1,"cmds":[)" + cmds + "]}");
  REQUIRE(request_run::runs_inline_here(*f.ctx, req));
  request_run run(f.ctx, f.host, true);
  auto t0 = std::chrono::steady_clock::now();
  run.start(std::move(req));
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(f.host.answers.size() == 1);
  REQUIRE(f.host.answers[0].error);
  CHECK(f.host.answers[0].error->code == 1007);
  // It stopped at the first command that found the deadline passed.
  auto pending = f.host.answers[0].error->details.find("pending");
  REQUIRE(pending);
  CHECK(pending->as_array().size() > 0);
  CHECK(pending->as_array().size() < 50);
  CHECK(took < std::chrono::milliseconds(900)); // not the whole chain's second
}

TEST_CASE("request_run: an inline run started after waiting past its timeout answers 1007") {
  fixture f;
  auto req = make_request(R"({"role":"rpc","u":"r","timeout":0.1,"cmds":[
      {"name":"a","fun":"echo","args":[1]}]})");
  request_run run(f.ctx, f.host, true);
  run.start(std::move(req), 0.15); // it waited 0.15 s for a slot
  REQUIRE(f.host.answers.size() == 1);
  REQUIRE(f.host.answers[0].error);
  CHECK(f.host.answers[0].error->code == 1007);
}

TEST_CASE("request_run: a result nested deeper than the readers accept fails with 1003") {
  fixture f;
  // Each echos wraps its input in one more array.
  std::string cmds = R"({"name":"c0","fun":"echos","args":[0]})";
  for (int i = 1; i < 600; ++i)
    cmds += R"(,{"name":"c)" + std::to_string(i) + R"(","fun":"echos","args":["c)" +
            std::to_string(i - 1) + R"("]})";
  request_run run(f.ctx, f.host, true);
  run.start(make_request(R"({"role":"rpc","u":"r","cmds":[)" + cmds + "]}"));
  REQUIRE(f.host.answers.size() == 1);
  REQUIRE(f.host.answers[0].error);
  CHECK(f.host.answers[0].error->code == 1003);
  // c510 is 511 deep: its answer frame would be 513.
  CHECK(f.host.answers[0].error->details.find("command")->as_string() == "c510");
  CHECK(f.host.answers[0].error->message.find("nested too deep") != std::string::npos);
}

TEST_CASE("deadline_error lists at most 100 pending commands, and says how many") {
  json::array names;
  for (int i = 0; i < 250; ++i)
    names.emplace_back("c" + std::to_string(i));
  auto e = deadline_error(1.5, names);
  CHECK(e.code == 1007);
  CHECK(e.details.find("pending")->as_array().size() == 100);
  CHECK(e.details.find("pending")->as_array()[99].as_string() == "c99");
  CHECK(e.details.find("pending_total")->as_uint() == 250);
  names.resize(3);
  CHECK(deadline_error(1.5, names).details.find("pending_total") == nullptr);
}

TEST_CASE("request_run: a call whose resolved arguments a peer could not read is not sent") {
  fixture f;
  f.peer("ws://p1:1", f.link1, {"remote_only"});
  // a: 300 levels deep; b's argument holds "a" 300 levels down: 600 once resolved.
  std::string deep = std::string(300, '[') + "1" + std::string(300, ']');
  std::string holder = std::string(300, '[') + "\"a\"" + std::string(300, ']');
  request_run run(f.ctx, f.host);
  run.start(make_request(R"({"role":"rpc","u":"r","cmds":[{"name":"a","fun":"echo","args":[)" +
                         deep + R"(]},{"name":"b","fun":"remote_only","args":[)" + holder +
                         "]}]}"));
  CHECK(f.host.remote.empty());
  REQUIRE(f.host.answers.size() == 1);
  REQUIRE(f.host.answers[0].error);
  CHECK(f.host.answers[0].error->code == 1003);
  CHECK(f.host.answers[0].error->message.find("arguments nested too deep") != std::string::npos);
}

TEST_CASE("nested_deeper_than counts containers, not scalars") {
  CHECK_FALSE(nested_deeper_than(json(1), 0));
  CHECK(nested_deeper_than(json::parse("[]"), 0));
  CHECK_FALSE(nested_deeper_than(json::parse("[[1]]"), 2));
  CHECK(nested_deeper_than(json::parse("[[1]]"), 1));
  CHECK(nested_deeper_than(json::parse(R"([1,{"a":[{}]}])"), 3));
  CHECK_FALSE(nested_deeper_than(json::parse(R"([1,{"a":[{}]}])"), 4));
}

TEST_CASE("request_run: a lost peer is retried on another, then 1008 naming both") {
  fixture f;
  f.peer("ws://p1:1", f.link1, {"remote_only"});
  f.peer("ws://p2:2", f.link2, {"remote_only"});
  request_run run(f.ctx, f.host);
  run.start(make_request(R"({"role":"rpc","u":"r5","cmds":[
      {"name":"a","fun":"echo","args":["v"]},
      {"name":"b","fun":"remote_only","args":["a"]}]})"));
  REQUIRE(f.host.remote.size() == 1);
  CHECK(f.host.remote[0].index == 1);
  CHECK(f.host.remote[0].call.command == "remote_only");
  CHECK(json{f.host.remote[0].call.args} == json::parse(R"(["v"])")); // resolved
  auto first = f.host.remote[0].url;
  run.remote_lost(1, first);
  REQUIRE(f.host.remote.size() == 2);
  CHECK(f.host.remote[1].url != first); // never the same peer twice
  // A peer without the function any more (1001) counts as lost too.
  run.remote_done(1, call_outcome{json{}, rpc_error(error_code::command_not_found, "gone")});
  REQUIRE(f.host.answers.size() == 1);
  auto& err = *f.host.answers[0].error;
  CHECK(err.code == 1008);
  auto tried = err.details["tried"].as_array();
  CHECK(tried.size() == 2u);
}

TEST_CASE("request_run: peers that all answer 'no such function' make it 1001, not 1008") {
  fixture f;
  f.peer("ws://p1:1", f.link1, {"remote_only"});
  f.peer("ws://p2:2", f.link2, {"remote_only"});
  request_run run(f.ctx, f.host);
  run.start(make_request(R"({"role":"rpc","u":"r5b","cmds":[
      {"name":"b","fun":"remote_only","args":["v"]}]})"));
  REQUIRE(f.host.remote.size() == 1);
  run.remote_done(0, call_outcome{json{}, rpc_error(error_code::command_not_found, "no f here")});
  REQUIRE(f.host.remote.size() == 2);
  run.remote_done(0, call_outcome{json{}, rpc_error(error_code::command_not_found, "no f here")});
  REQUIRE(f.host.answers.size() == 1);
  auto& err = *f.host.answers[0].error;
  CHECK(err.code == 1001);
  CHECK(err.message.find("no f here") != std::string::npos);
  CHECK(err.details["command"] == json("b"));
  CHECK(err.details["tried"].as_array().size() == 2u);
}

TEST_CASE("request_run: a peer's error details never rename the command") {
  fixture f;
  f.peer("ws://p1:1", f.link1, {"remote_only"});
  request_run run(f.ctx, f.host);
  run.start(make_request(R"({"role":"rpc","u":"r5c","cmds":[
      {"name":"b","fun":"remote_only","args":["v"]}]})"));
  REQUIRE(f.host.remote.size() == 1);
  run.remote_done(0, call_outcome{json{}, rpc_error(error_code::execution_failed, "boom",
                                                    json::parse(R"({"command":"zzz","why":"d"})"))});
  REQUIRE(f.host.answers.size() == 1);
  auto& err = *f.host.answers[0].error;
  CHECK(err.code == 1003);
  CHECK(err.details["command"] == json("b"));
  CHECK(err.details["function"] == json("remote_only"));
  CHECK(err.details["why"] == json("d"));
}

TEST_CASE("request_run: a peer's answer completes the command; inline functions never leave") {
  fixture f;
  f.peer("ws://p1:1", f.link1, {"remote_only", "echo"});
  request_run run(f.ctx, f.host);
  run.start(make_request(R"({"role":"rpc","u":"r6","cmds":[
      {"name":"a","fun":"remote_only","args":[1]},
      {"name":"b","fun":"echo","args":["a"]}]})"));
  REQUIRE(f.host.remote.size() == 1);
  run.remote_done(0, call_outcome{json("from-peer"), std::nullopt});
  // echo exists on the peer too, but runs here.
  CHECK(f.host.remote.size() == 1);
  REQUIRE(f.host.answers.size() == 1);
  CHECK(*f.host.answers[0].r == json::parse(R"({"b":"from-peer"})"));
}

TEST_CASE("request_run: a graph error answers 1006 and nothing runs") {
  fixture f;
  request_run run(f.ctx, f.host);
  request req;
  req.u = "r7";
  req.cmds.push_back(command{"a", "slow", json::array{json("b")}, {}, {}});
  req.cmds.push_back(command{"b", "slow", json::array{json("a")}, {}, {}});
  run.start(std::move(req));
  REQUIRE(f.host.answers.size() == 1);
  CHECK(f.host.answers[0].error->code == 1006);
  CHECK(f.host.pool.empty());
}

namespace {

// Runs `req` inline with a host that writes frames; returns its one frame.
std::string answer_frame_of(fixture& f, request req) {
  frame_host host;
  request_run run(f.ctx, host, true);
  run.start(std::move(req));
  REQUIRE(host.frames.size() == 1);
  CHECK_FALSE(host.answered_as_response);
  return host.frames[0];
}

request echo_request(const std::string& u, json value) {
  request req;
  req.u = u;
  req.cmds.push_back(command{"a", "echo", json::array{std::move(value)}, {}, {}});
  return req;
}

} // namespace

TEST_CASE("request_run: the size limit holds for the answer's whole frame") {
  constexpr std::size_t limit = 200;
  fixture f(limit);
  // {"r":{"a":"xx…"},"error":null,"u":"u1"}: 34 bytes around the string.
  const std::size_t around = R"({"r":{"a":""},"error":null,"u":"u1"})"s.size();
  auto fits = answer_frame_of(f, echo_request("u1", json(std::string(limit - around, 'x'))));
  CHECK(fits.size() == limit);
  CHECK(json::parse(fits).find("error")->is_null());

  // One byte more: the result alone is well under the limit, the frame is not.
  auto over = json::parse(
    answer_frame_of(f, echo_request("u1", json(std::string(limit - around + 1, 'x')))));
  CHECK(*over.find("u") == json("u1"));
  const json* err = over.find("error");
  REQUIRE(err->is_object());
  CHECK(*err->find("code") == json(1003));
  CHECK(err->find("message")->as_string().find("'a'") != std::string::npos);
  CHECK(*err->find("details")->find("commands") == json::parse(R"(["a"])"));
  CHECK(*err->find("details")->find("max_message_size") == json(limit));

  // Escapes count: 100 quotes are 200 bytes once written.
  auto quotes = json::parse(answer_frame_of(f, echo_request("u2", json(std::string(100, '"')))));
  CHECK(*quotes.find("error")->find("code") == json(1003));
}

TEST_CASE("request_run: integers count their digits against the limit") {
  fixture f(400);
  json::array zeros(100, json(0)); // 201 bytes written; an estimate of 24 each said 2.5 KB
  auto frame = answer_frame_of(f, echo_request("u3", json(zeros)));
  CHECK(frame.size() < 400);
  CHECK(*json::parse(frame).find("r") == json::make_object({{"a", json(zeros)}}));
  CHECK(decimal_digits(0) == 1);
  CHECK(decimal_digits(9) == 1);
  CHECK(decimal_digits(10) == 2);
  CHECK(decimal_digits(UINT64_MAX) == 20);
}

TEST_CASE("request_run: an error too large for a frame keeps its code, shortened") {
  fixture f(300);
  f.ctx->functions.add(local_function{
    "shout",
    [](const json::array&, const json::object&) -> json {
      throw std::runtime_error(std::string(1000, 'e'));
    },
    {}, true});
  request req;
  req.u = "u4";
  req.cmds.push_back(command{"a", "shout", {}, {}, {}});
  auto frame = answer_frame_of(f, std::move(req));
  CHECK(frame.size() <= 300);
  auto answer = json::parse(frame);
  CHECK(*answer.find("u") == json("u4"));
  const json* err = answer.find("error");
  REQUIRE(err->is_object());
  CHECK(*err->find("code") == json(1003));
  CHECK(err->find("message")->as_string().find("shortened") != std::string::npos);
}
