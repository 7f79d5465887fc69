#include <doctest/doctest.h>

#include "protocol/codec.hpp"

using namespace mpreg;
using namespace mpreg::protocol;

namespace {
template <class T>
T must(const inbound& in) {
  if (auto f = std::get_if<decode_failure>(&in))
    FAIL("decode failed: " << f->error.message);
  REQUIRE(std::holds_alternative<T>(in));
  return std::get<T>(in);
}
decode_failure fails(std::string_view text) {
  auto in = decode(text);
  REQUIRE(std::holds_alternative<decode_failure>(in));
  return std::get<decode_failure>(in);
}
} // namespace

TEST_CASE("a README request decodes with defaults") {
  auto r = must<request>(decode(R"({"role":"rpc","u":"x1","cmds":[
    {"name":"|first","fun":"echo","args":["hi there!"],"kwargs":{},"locs":[]},
    {"name":"|second","fun":"echo","args":["|first"]},
    {"name":"|third","fun":"echos","args":["|first","AND ME TOO"],"locs":["dataset-1"]}],"timeout":5.0})"));
  CHECK(r.u == "x1");
  REQUIRE(r.cmds.size() == 3);
  CHECK(r.cmds[1].kwargs.empty());
  CHECK(r.cmds[1].locs.empty());
  CHECK(r.cmds[2].locs == std::vector<std::string>{"dataset-1"});
  CHECK(*r.timeout == 5.0);
  // Round trip through our encoder.
  auto again = must<request>(decode(encode(r)));
  CHECK(again.cmds[2].args == r.cmds[2].args);
}

TEST_CASE("request validation errors") {
  CHECK(fails("not json").error.code == 1006);
  CHECK(fails("not json").u == "unknown");
  CHECK(fails("[1,2]").error.code == 1006);
  CHECK(fails(R"({"u":"a","cmds":[]})").error.code == 1004);
  auto bad_role = fails(R"({"role":"nope","u":"a"})");
  CHECK(bad_role.error.code == 1004);
  CHECK(bad_role.u == "a");
  CHECK(fails(R"({"role":5,"u":"a"})").error.code == 1004);
  CHECK(fails(R"({"role":"rpc","cmds":[{"name":"a","fun":"echo"}]})").error.code == 1006);
  CHECK(fails(R"({"role":"rpc","u":7,"cmds":[{"name":"a","fun":"echo"}]})").error.code == 1006);
  CHECK(fails(R"({"role":"rpc","u":"a","cmds":[]})").error.code == 1006);
  CHECK(fails(R"({"role":"rpc","u":"a","cmds":{}})").error.code == 1006);
  CHECK(fails(R"({"role":"rpc","u":"a","cmds":[5]})").error.code == 1006);
  CHECK(fails(R"({"role":"rpc","u":"a","cmds":[{"fun":"echo"}]})").error.code == 1006);
  CHECK(fails(R"({"role":"rpc","u":"a","cmds":[{"name":"a","fun":3}]})").error.code == 1006);
  CHECK(fails(R"({"role":"rpc","u":"a","cmds":[{"name":"a","fun":"f","args":{}}]})").error.code == 1006);
  CHECK(fails(R"({"role":"rpc","u":"a","cmds":[{"name":"a","fun":"f","kwargs":[]}]})").error.code == 1006);
  CHECK(fails(R"({"role":"rpc","u":"a","cmds":[{"name":"a","fun":"f","locs":[1]}]})").error.code == 1006);
  CHECK(fails(R"({"role":"rpc","u":"a","timeout":"5","cmds":[{"name":"a","fun":"f"}]})").error.code == 1006);
  CHECK(fails(R"({"role":"rpc","u":"a","timeout":-1,"cmds":[{"name":"a","fun":"f"}]})").error.code == 1006);
  auto detail = fails(R"({"role":"rpc","u":"q","cmds":[{"name":"a","fun":"f","args":3}]})");
  CHECK(detail.u == "q");
  CHECK(detail.error.details.find("field")->as_string() == "cmds[0].args");
}

TEST_CASE("responses encode as PROTOCOL.md says") {
  response ok;
  ok.u = "a";
  ok.r = json::make_object({{"|x", 1}});
  CHECK(encode(ok) == R"({"r":{"|x":1},"error":null,"u":"a"})");
  response bad;
  bad.u = "b";
  bad.error = rpc_error(error_code::command_not_found, "no", json{});
  CHECK(encode(bad) == R"({"r":null,"error":{"code":1001,"message":"no","details":null},"u":"b"})");
  auto back = must<response>(decode(encode(bad)));
  CHECK(back.error->code == 1001);
  auto back_ok = must<response>(decode(encode(ok)));
  CHECK(*back_ok.r == *ok.r);
}

TEST_CASE("node-to-node messages round trip") {
  server_message hello;
  hello.u = "h";
  hello.what = "HELLO";
  hello.advert.funs = {"echo", "train"};
  hello.advert.locs = {"gpu"};
  hello.advert.cluster_id = "prod";
  hello.advert.advertised_urls = {"ws://127.0.0.1:9001"};
  hello.advert.fun_locs["train"] = {"model-a"};
  auto h = must<server_message>(decode(encode(hello)));
  CHECK(h.what == "HELLO");
  CHECK(h.advert.funs == hello.advert.funs);
  CHECK(h.advert.fun_locs == hello.advert.fun_locs);
  CHECK(h.advert.cluster_id == "prod");

  auto mpreg_hello = must<server_message>(decode(
    R"({"role":"server","u":"1","server":{"what":"HELLO","funs":["f"],"locs":[],"cluster_id":"c","advertised_urls":["ws://x:1"]}})"));
  CHECK(mpreg_hello.advert.fun_locs.empty());

  internal_rpc call{"c1", "train", json::array{1, "a"}, json::object{{"k", 2}}};
  auto c = must<internal_rpc>(decode(encode(call)));
  CHECK(c.command == "train");
  CHECK(c.args.size() == 2);
  CHECK(json(c.kwargs) == json(call.kwargs));

  internal_answer ans{"c1", json("r"), std::nullopt};
  auto a = must<internal_answer>(decode(encode(ans)));
  CHECK(a.answer == json("r"));
  CHECK(!a.error);
  ans.error = rpc_error(error_code::execution_failed, "boom", json{});
  CHECK(must<internal_answer>(decode(encode(ans))).error->code == 1003);

  gossip g{"g", "prod", {}};
  g.peers.push_back(gossip_entry{"ws://127.0.0.1:1", hello.advert, 1737072000.25});
  auto gg = must<gossip>(decode(encode(g)));
  REQUIRE(gg.peers.size() == 1);
  CHECK(gg.peers[0].last_seen == 1737072000.25);
  CHECK(gg.peers[0].advert.funs == hello.advert.funs);
}

TEST_CASE("ids are unique") {
  CHECK(new_id() != new_id());
  CHECK(new_id().size() == 26);
}
