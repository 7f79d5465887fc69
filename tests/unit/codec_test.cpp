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
  auto bad_loc = fails(R"({"role":"rpc","u":"a","cmds":[{"name":"a","fun":"f","locs":["gpu",1]}]})");
  CHECK(bad_loc.error.code == 1006);
  CHECK(bad_loc.error.message == "field 'cmds[0].locs' must be an array of strings, got integer at index 1");
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

TEST_CASE("malformed frames keep their u when one can be read") {
  // Valid JSON our reader refuses, and JSON that is not valid at all.
  CHECK(fails(R"({"role":"rpc","u":"big","cmds":[{"name":"a","fun":"echo","args":[1e400]}]})").u ==
        "big");
  CHECK(fails(R"({"role":"rpc","cmds":[{"name":"a","fun":"echo","args":["\ud800"]}],"u":"sur"})")
          .u == "sur");
  std::string deep = R"({"role":"rpc","cmds":[{"name":"a","fun":"echo","args":[)" +
                     std::string(600, '[') + std::string(600, ']') + R"(]}],"u":"deep"})";
  auto d = fails(deep);
  CHECK(d.error.code == 1006);
  CHECK(d.u == "deep");
  CHECK(fails(R"({"role":"rpc","u":"cut","cmds":[{"name")").u == "cut");
  CHECK(fails(R"({"role":"rpc","x":"a,}\"]","u":"esc\n","cmds":[)").u == "esc\n");
  // No u, a u that is not a string, or none before the text breaks: unknown.
  CHECK(fails(R"({"role":"rpc","cmds":[1e400]})").u == "unknown");
  CHECK(fails(R"({"role":"rpc","u":5,"cmds":[1e400]})").u == "unknown");
  CHECK(fails(R"({"role":"rpc","cmds":[1e400,)").u == "unknown");
  CHECK(fails(R"({"u":"\ud800","cmds":[1e400]})").u == "unknown");
  CHECK(fails("[1e400]").u == "unknown");
  CHECK(fails("").u == "unknown");
  // The first u wins, as in the readers; nested ones are not the frame's.
  CHECK(fails(R"({"a":{"u":"inner"},"u":"outer","u":"second","b":1e400})").u == "outer");
}

TEST_CASE("a lone low surrogate is refused wherever it is, as a lone high one is") {
  // RapidJSON decodes "\udc00" alone into bytes that are not UTF-8.
  for (const char* text :
       {R"({"role":"rpc","u":"a","cmds":[{"name":"c","fun":"echo","args":["x\udc00"]}]})",
        R"({"role":"rpc","u":"a","cmds":[{"name":"c","fun":"echo","args":[{"\udfff":1}]}]})",
        R"({"role":"rpc","u":"a","extra":"\udc00","cmds":[{"name":"c","fun":"echo"}]})",
        R"({"role":"rpc","u":"a","cmds":[{"name":"\udc00","fun":"echo"}]})",
        R"({"role":"internal-rpc","command":"echo","args":["\udc00"],"kwargs":{},"results":{},"u":"a"})"}) {
    CAPTURE(text);
    auto e = fails(text);
    CHECK(e.error.code == 1006);
    CHECK(e.u == "a");
    CHECK(e.error.message.find("lone surrogate") != std::string::npos);
  }
  CHECK(fails(R"({"role":"rpc","u":"\udc00","cmds":[]})").u == "unknown");
  // A pair is one character.
  auto ok = must<request>(
    decode(R"({"role":"rpc","u":"a","cmds":[{"name":"c","fun":"echo","args":["\ud83d\ude00"]}]})"));
  CHECK(ok.cmds[0].args[0].as_string() == "\xf0\x9f\x98\x80");
  CHECK_THROWS_AS(json::parse(R"(["\udc00"])"), mpreg::json_error);
}

TEST_CASE("HELLO must say its cluster, as a string") {
  auto missing = fails(R"({"role":"server","u":"h","server":{"what":"HELLO","funs":["f"],"locs":[]}})");
  CHECK(missing.error.code == 1006);
  CHECK(missing.u == "h");
  CHECK(missing.error.message == "missing field 'server.cluster_id'");
  auto number = fails(R"({"role":"server","u":"h","server":{"what":"HELLO","cluster_id":5}})");
  CHECK(number.error.code == 1006);
  CHECK(number.error.message == "field 'cluster_id' must be a string, got integer");
  CHECK(fails(R"({"role":"gossip","u":"g","cluster_id":[],"peers":[]})").error.code == 1006);
  // GOODBYE and STATUS carry no advert.
  must<server_message>(decode(R"({"role":"server","u":"b","server":{"what":"GOODBYE"}})"));
}

TEST_CASE("gossip entries need a url and a numeric last_seen") {
  auto entry = [](const std::string& last_seen) {
    return R"({"role":"gossip","u":"g","cluster_id":"c","peers":[{"url":"ws://127.0.0.1:1",)"
           R"("funs":["f"],"last_seen":1.5},{"url":"ws://127.0.0.1:2","funs":[])" +
           last_seen + "}]}";
  };
  for (const auto& bad : {std::string{}, std::string(R"(,"last_seen":"x")"),
                          std::string(R"(,"last_seen":null)")}) {
    auto e = fails(entry(bad));
    CHECK(e.error.code == 1006);
    CHECK(e.u == "g");
    CHECK(e.error.details.find("field")->as_string() == "peers[1].last_seen");
  }
  CHECK(fails(entry(R"(,"last_seen":"x")")).error.message ==
        "field 'peers[1].last_seen' must be a number, got string");
  auto ok = must<gossip>(decode(entry(R"(,"last_seen":-5)")));
  CHECK(ok.peers.size() == 2);
  CHECK(ok.peers[1].last_seen == -5.0); // a number: judged by the gossip actor (stale)
  CHECK(fails(R"({"role":"gossip","u":"g","peers":[7]})").error.message ==
        "gossip peers must be objects, got integer at index 0");
}

TEST_CASE("ids are unique") {
  CHECK(new_id() != new_id());
  CHECK(new_id().size() == 26);
}

#include "protocol/request_reader.hpp"

TEST_CASE("the fast request reader agrees with the general decoder, or declines") {
  // Well-formed requests: the fast path takes them and reads them exactly.
  const char* taken[] = {
    R"({"role":"rpc","u":"1","cmds":[{"name":"a","fun":"echo","args":["x"]}]})",
    R"({"cmds":[{"fun":"f","name":"a","locs":["gpu","m"],"kwargs":{"k":[1,{"z":null}]},"args":[]}],"u":"2","role":"rpc","timeout":2.5})",
    R"({"role":"rpc","u":"3","timeout":7,"cmds":[{"name":"a","fun":"f","args":null,"kwargs":null,"locs":null}]})",
    R"({"role":"rpc","u":"4","extra":{"deep":[[{"x":1}]]},"cmds":[{"name":"a","fun":"f","why":[1,2],"args":[1.5,-2,18446744073709551615,true,"caf\u00e9"]},{"name":"b","fun":"g","args":["a"]}]})",
    " \n{\"role\":\"rpc\",\"u\":\"5\",\"cmds\":[{\"name\":\"\xc3\xa9\",\"fun\":\"f\"}],\"timeout\":null}\t",
  };
  for (const char* text : taken) {
    CAPTURE(text);
    auto fast = read_request(text);
    REQUIRE(fast.has_value());
    CHECK(encode(*fast) == encode(must<request>(decode(text))));
    CHECK(fast->timeout == must<request>(decode(text)).timeout);
  }
  // Anything else is declined; the general decoder answers it (or reads it).
  const char* declined[] = {
    R"({"role":"server","u":"1","server":{"what":"STATUS"}})",
    R"({"u":"1","cmds":[{"name":"a","fun":"f"}]})",
    R"({"role":"rpc","cmds":[{"name":"a","fun":"f"}]})",
    R"({"role":"rpc","u":1,"cmds":[{"name":"a","fun":"f"}]})",
    R"({"role":"rpc","u":"1","cmds":[]})",
    R"({"role":"rpc","u":"1","cmds":{}})",
    R"({"role":"rpc","u":"1","cmds":["a"]})",
    R"({"role":"rpc","u":"1","cmds":[{"name":"a"}]})",
    R"({"role":"rpc","u":"1","cmds":[{"name":"a","fun":null}]})",
    R"({"role":"rpc","u":"1","cmds":[{"name":"a","fun":"f","args":{}}]})",
    R"({"role":"rpc","u":"1","cmds":[{"name":"a","fun":"f","kwargs":[]}]})",
    R"({"role":"rpc","u":"1","cmds":[{"name":"a","fun":"f","locs":[1]}]})",
    R"({"role":"rpc","u":"1","cmds":[{"name":"a","fun":"f","name":"b"}]})",
    R"({"role":"rpc","u":"1","u":"2","cmds":[{"name":"a","fun":"f"}]})",
    R"({"role":"rpc","u":"1","timeout":0,"cmds":[{"name":"a","fun":"f"}]})",
    R"({"role":"rpc","u":"1","timeout":"5","cmds":[{"name":"a","fun":"f"}]})",
    R"({"role":"rpc","u":"1","cmds":[{"name":"a","fun":"f"}]} x)",
    R"({"role":"rpc","u":"1","cmds":[{"name":"a","fun":"f"})",
    R"(["role","rpc"])",
    "{\"role\":\"rpc\",\"u\":\"\xff\",\"cmds\":[{\"name\":\"a\",\"fun\":\"f\"}]}",
  };
  for (const char* text : declined) {
    CAPTURE(text);
    CHECK_FALSE(read_request(text).has_value());
  }
  std::string with_nul = R"({"role":"rpc","u":"1","cmds":[{"name":"a","fun":"f"}]})";
  with_nul += std::string("\0{}", 3);
  CHECK_FALSE(read_request(with_nul).has_value());
  // The nesting limit is the general parser's.
  std::string deep = R"({"role":"rpc","u":"1","cmds":[{"name":"a","fun":"f","args":)";
  deep += std::string(600, '[') + std::string(600, ']') + "}]}";
  CHECK_FALSE(read_request(deep).has_value());
  CHECK(std::holds_alternative<decode_failure>(decode(deep)));
  std::string ok = R"({"role":"rpc","u":"1","cmds":[{"name":"a","fun":"f","args":)";
  ok += std::string(500, '[') + std::string(500, ']') + "}]}";
  REQUIRE(read_request(ok).has_value());
  CHECK(encode(*read_request(ok)) == encode(must<request>(decode(ok))));
}

TEST_CASE("forwarded calls and answers are written exactly as their JSON trees would be") {
  // Strings that need escapes, non-ASCII text and bytes that are not UTF-8
  // (written as U+FFFD), in every field the encoders write around.
  const std::string odd = "q\"uo\\te\n\xc3\xa9 \xff end";
  internal_rpc call{"u-" + odd, "f" + odd,
                    json::array{1, -2.5, odd, json{}, json::array{true, json::object{{odd, 3}}}},
                    json::object{{"k" + odd, json::array{odd}}, {"n", 7}}};
  auto tree = json::make_object({{"role", "internal-rpc"},
                                 {"command", call.command},
                                 {"args", json{call.args}},
                                 {"kwargs", json{call.kwargs}},
                                 {"results", json::make_object({})},
                                 {"u", call.u}});
  CHECK(encode(call) == tree.dump());
  call.args.clear();
  call.kwargs.clear();
  tree["args"] = json{json::array{}};
  tree["kwargs"] = json::make_object({});
  CHECK(encode(call) == tree.dump());

  internal_answer ans{"u-" + odd, json::array{odd, 1}, std::nullopt};
  auto answer_tree = json::make_object({{"role", "internal-answer"}, {"answer", ans.answer}, {"u", ans.u}});
  CHECK(encode(ans) == answer_tree.dump());
  ans.error = rpc_error(error_code::execution_failed, "boom " + odd, json::make_object({{"x", 1}}));
  answer_tree["error"] = ans.error->to_json();
  CHECK(encode(ans) == answer_tree.dump());

  response r{"u-" + odd, json::make_object({{"a", odd}}), std::nullopt};
  CHECK(encode(r) == "{\"r\":" + r.r->dump() + ",\"error\":null,\"u\":" + json(r.u).dump() + "}");
}

#include "protocol/internal_reader.hpp"

namespace {
// A call or answer written back out: the encoders write every field decoded.
std::string written(const std::variant<internal_rpc, internal_answer>& m) {
  return std::visit([](const auto& x) { return encode(x); }, m);
}
std::string written(const inbound& in) {
  if (auto c = std::get_if<internal_rpc>(&in))
    return encode(*c);
  if (auto a = std::get_if<internal_answer>(&in))
    return encode(*a);
  return "(not a call or an answer)";
}
} // namespace

TEST_CASE("the fast reader of peers' calls and answers agrees with the general decoder, or declines") {
  const char* taken[] = {
    R"({"role":"internal-rpc","command":"echo","args":["x"],"kwargs":{},"results":{},"u":"1"})",
    R"({"role":"internal-rpc","u":"2","command":"f","args":null,"kwargs":null})",
    R"({"role":"internal-rpc","u":"3","command":"f","extra":[1,{"a":[2]}],"kwargs":{"k":[1,{"z":null}]},"args":[1.5,-2,18446744073709551615,true,"caf\u00e9",[[]]]})",
    R"({"role":"internal-rpc","u":"4","command":"f","answer":{"x":1},"error":5})",
    R"({"role":"internal-answer","answer":"x","u":"5"})",
    R"({"role":"internal-answer","answer":null,"error":{"code":1003,"message":"m","details":[1]},"u":"6"})",
    R"({"role":"internal-answer","u":"7","answer":{"a":[1,2,{"b":null}]},"error":null})",
    R"({"role":"internal-answer","u":"8","error":"plain text"})",
    R"({"role":"internal-answer","u":"9","error":{"code":"x","message":7}})",
    R"({"role":"internal-answer","u":"10","answer":[],"command":"ignored","args":{}})",
    R"({"role":"internal-answer","u":"11","answer":-0.5e3})",
    " {\"role\":\"internal-answer\",\"u\":\"\xc3\xa9\",\"answer\":true}\n",
  };
  for (const char* text : taken) {
    CAPTURE(text);
    auto fast = read_internal(text);
    REQUIRE(fast.has_value());
    CHECK(written(*fast) == written(decode(text)));
    CHECK(written(decode_frame(std::string(text))) == written(decode(text)));
  }
  const char* declined[] = {
    R"({"u":"1","role":"internal-rpc","command":"f"})", // "role" not first
    R"({"role":"internal-rpc","command":"f"})",
    R"({"role":"internal-rpc","u":"1"})",
    R"({"role":"internal-rpc","u":1,"command":"f"})",
    R"({"role":"internal-rpc","u":"1","command":null})",
    R"({"role":"internal-rpc","u":"1","command":"f","args":{}})",
    R"({"role":"internal-rpc","u":"1","command":"f","args":"x"})",
    R"({"role":"internal-rpc","u":"1","command":"f","kwargs":[]})",
    R"({"role":"internal-rpc","u":"1","command":"f","kwargs":3})",
    R"({"role":"internal-rpc","u":"1","command":"f","u":"2"})",
    R"({"role":"internal-answer","answer":1})",
    R"({"role":"internal-answer","u":"1"})",            // neither answer nor error
    R"({"role":"internal-answer","u":"1","error":null})",
    R"({"role":"internal-answer","u":"1","answer":1,"answer":2})",
    R"({"role":"internal-answer","u":"1","role":"internal-answer"})",
    R"({"role":"rpc","u":"1","cmds":[{"name":"a","fun":"f"}]})",
    R"({"role":"internal-ask","u":"1"})",
    R"({"role":null,"u":"1"})",
    R"({"role":"internal-answer","u":"1","answer":1} x)",
    R"({"role":"internal-answer","u":"1","answer":[1})",
    R"(["role","internal-answer"])",
    R"({})",
    "{\"role\":\"internal-answer\",\"u\":\"\xff\",\"answer\":1}",
  };
  for (const char* text : declined) {
    CAPTURE(text);
    CHECK_FALSE(read_internal(text).has_value());
    CHECK(written(decode_frame(std::string(text))) == written(decode(text)));
  }
  // An answer with neither its result nor its error is malformed (the
  // caller's link takes the peer as lost for that call), not a null result.
  for (const char* text : {R"({"role":"internal-answer","u":"1"})",
                           R"({"role":"internal-answer","u":"1","error":null})"}) {
    CAPTURE(text);
    auto in = decode(text);
    REQUIRE(std::holds_alternative<decode_failure>(in));
    CHECK(std::get<decode_failure>(in).u == "1");
    CHECK(std::get<decode_failure>(in).error.message.find("answer") != std::string::npos);
  }
  std::string with_nul = R"({"role":"internal-answer","u":"1","answer":1})";
  with_nul += std::string("\0{}", 3);
  CHECK_FALSE(read_internal(with_nul).has_value());
  // The nesting limit is the general parser's.
  std::string deep = R"({"role":"internal-answer","u":"1","answer":)";
  deep += std::string(600, '[') + std::string(600, ']') + "}";
  CHECK_FALSE(read_internal(deep).has_value());
  CHECK(std::holds_alternative<decode_failure>(decode(deep)));
  std::string ok = R"({"role":"internal-rpc","u":"1","command":"f","args":)";
  ok += std::string(500, '[') + std::string(500, ']') + "}";
  REQUIRE(read_internal(ok).has_value());
  CHECK(written(*read_internal(ok)) == written(decode(ok)));
}

TEST_CASE("what a node writes for peers, its fast reader reads back exactly") {
  const std::string odd = "q\"uo\\te\n\xc3\xa9 \xff end";
  internal_rpc call{"u-" + odd, "f" + odd, json::array{1, -2.5, odd, json{}},
                    json::object{{"k" + odd, json::array{odd}}}};
  auto text = encode(call);
  auto back = read_internal(text);
  REQUIRE(back.has_value());
  REQUIRE(std::holds_alternative<internal_rpc>(*back));
  CHECK(encode(std::get<internal_rpc>(*back)) == text);
  internal_answer ans{"u-" + odd, json::object{{odd, json::array{1, odd}}},
                      rpc_error(1003, "m" + odd, json::array{odd})};
  text = encode(ans);
  back = read_internal(text);
  REQUIRE(back.has_value());
  REQUIRE(std::holds_alternative<internal_answer>(*back));
  CHECK(encode(std::get<internal_answer>(*back)) == text);
}

TEST_CASE("the fast readers decline text with a lone low surrogate, even in a skipped field") {
  CHECK_FALSE(read_request(R"({"role":"rpc","u":"a","x":["\udc00"],"cmds":[{"name":"c","fun":"echo"}]})"));
  CHECK_FALSE(read_request(R"({"role":"rpc","u":"a","cmds":[{"name":"c","fun":"echo","args":["\udc00"]}]})"));
  CHECK_FALSE(read_internal(R"({"role":"internal-answer","answer":"\udc00","u":"a"})"));
  CHECK(read_request(R"({"role":"rpc","u":"a","cmds":[{"name":"c","fun":"echo","args":["\ud83d\ude00"]}]})"));
}
