#include <doctest/doctest.h>

#include <cmath>

#include "mpreg/json.hpp"

using mpreg::json;

TEST_CASE("json round-trips every kind") {
  const char* text =
    R"({"n":null,"b":true,"i":-5,"u":18446744073709551615,"d":2.5,"s":"h\u00e9","a":[1,[2]],"o":{"k":{}}})";
  json v = json::parse(text);
  CHECK(v.find("n")->is_null());
  CHECK(v.find("b")->as_bool());
  CHECK(v.find("i")->as_int() == -5);
  CHECK(v.find("u")->as_uint() == 18446744073709551615ull);
  CHECK(v.find("d")->as_double() == 2.5);
  CHECK(v.find("s")->as_string() == "h\xc3\xa9");
  CHECK(v.find("a")->as_array()[1].as_array()[0].as_int() == 2);
  CHECK(json::parse(v.dump()) == v);
  CHECK(v.dump() == R"({"n":null,"b":true,"i":-5,"u":18446744073709551615,"d":2.5,"s":"hé","a":[1,[2]],"o":{"k":{}}})");
}

TEST_CASE("json keeps object member order") {
  json v = json::parse(R"({"z":1,"a":2,"m":3})");
  CHECK(v.dump() == R"({"z":1,"a":2,"m":3})");
}

TEST_CASE("json parse errors name the offset") {
  CHECK_THROWS_AS(json::parse("{\"a\":"), mpreg::json_error);
  CHECK_THROWS_AS(json::parse(""), mpreg::json_error);
  CHECK_THROWS_AS(json::parse("[1,]"), mpreg::json_error);
  CHECK_THROWS_AS(json::parse("\"\xff\""), mpreg::json_error); // invalid UTF-8
  try {
    json::parse("[1, 2");
    FAIL("no throw");
  } catch (const mpreg::json_error& e) {
    CHECK(std::string(e.what()).find("offset") != std::string::npos);
  }
}

TEST_CASE("json refuses absurd nesting without crashing") {
  std::string deep(100000, '[');
  CHECK_THROWS_AS(json::parse(deep), mpreg::json_error);
  std::string ok(500, '[');
  ok += std::string(500, ']');
  CHECK(json::parse(ok).is_array());
}

TEST_CASE("json accessors and equality") {
  json o = json::make_object({{"a", 1}, {"b", json::make_array({1, "x"})}});
  CHECK(o == json::parse(R"({"b":[1,"x"],"a":1})"));
  CHECK(json(1) == json(1.0));
  CHECK(json(1) != json("1"));
  CHECK_THROWS_AS(json("x").as_int(), mpreg::json_error);
  json n;
  n["k"] = "v";
  n["k"] = "w";
  CHECK(n.dump() == R"({"k":"w"})");
  json a;
  a.push_back(3);
  CHECK(a.dump() == "[3]");
  CHECK(json(std::nan("")).dump() == "null");
  CHECK(json(5.0).dump() == "5.0");
}

TEST_CASE("json::parse refuses what follows the document, a NUL included, and bad UTF-8") {
  for (std::string bad : {std::string("{} x"), std::string("[1,"), std::string(""),
                          std::string("{}\0{}", 5), std::string("\"\xff\"")})
    CHECK_THROWS_AS(json::parse(bad), mpreg::json_error);
  CHECK(json::parse("  [1]  ") == json::parse("[1]"));
}

TEST_CASE("json::parse: deep, wide and non-ASCII documents") {
  std::string deep(400, '[');
  deep += std::string(400, ']');
  CHECK(json::parse(deep).is_array());
  std::string too_deep(600, '[');
  too_deep += std::string(600, ']');
  CHECK_THROWS_WITH_AS(json::parse(too_deep), doctest::Contains("nesting deeper"),
                       mpreg::json_error);
  std::string wide = "{";
  for (int i = 0; i < 1000; ++i)
    wide += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":[" + std::to_string(i) + ",\"v\"]";
  wide += "}";
  auto v = json::parse(wide);
  REQUIRE(v.as_object().size() == 1000u);
  CHECK(v.as_object()[999].key == "k999");
  CHECK(v.as_object()[999].value.as_array()[0].as_int() == 999);
  // Non-ASCII text is validated; escapes are decoded.
  auto u = json::parse("[\"caf\xc3\xa9\",\"\\u00e9\\ud83d\\ude00\"]");
  CHECK(u.as_array()[0].as_string() == "caf\xc3\xa9");
  CHECK(u.as_array()[1].as_string() == "\xc3\xa9\xf0\x9f\x98\x80");
  CHECK_THROWS_AS(json::parse("[\"ok\",\"\xc0\xaf\"]"), mpreg::json_error); // overlong '/'
}

TEST_CASE("output is always valid UTF-8: invalid bytes become U+FFFD") {
  const std::string fffd = "\xef\xbf\xbd";
  CHECK(json(std::string("caf\xc3\xa9")).dump() == "\"caf\xc3\xa9\"");
  CHECK(json(std::string("a\xff" "b")).dump() == "\"a" + fffd + "b\"");
  CHECK(json(std::string("\xc0\xaf")).dump() == "\"" + fffd + fffd + "\"");       // overlong
  CHECK(json(std::string("\xed\xa0\x80")).dump() == "\"" + fffd + fffd + fffd + "\""); // surrogate
  CHECK(json(std::string("x\xe2\x82")).dump() == "\"x" + fffd + fffd + "\"");      // truncated
  CHECK(json(std::string("\xf0\x9f\x98\x80")).dump() == "\"\xf0\x9f\x98\x80\"");
  json o = json::make_object({{std::string("k\xfe"), 1}});
  CHECK(o.dump() == "{\"k" + fffd + "\":1}");
  std::string out = "prefix:";
  json::make_array({1, "two"}).dump_to(out);
  CHECK(out == "prefix:[1,\"two\"]");
}
