// routing_table (src/peers/routing_table.hpp): HELLO merge, gossip
// newest-wins, tombstones, expiry and candidate selection, against
// PROTOCOL.md "Node <-> node".
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "peers/routing_table.hpp"

using namespace mpreg;
using strings = std::vector<std::string>;

namespace {

// A routing table stores link actors; a real (idle) actor stands in for a
// peer link. Handles must die before the actor system: the fixture keeps the
// table and every handle in members declared after the system.
struct link_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::actor link1;
  caf::actor link2;
  routing_table table;

  static caf::actor_system_config& configure(caf::actor_system_config& c) {
    c.set("scheduler.max-threads", std::size_t{1});
    return c;
  }

  link_fixture() : sys(configure(cfg)) {
    auto idle = [](caf::event_based_actor*) -> caf::behavior {
      return {[](int) {}};
    };
    link1 = sys.spawn(idle);
    link2 = sys.spawn(idle);
  }

  // The table (declared last) is destroyed first, then the handles, then
  // the system, which waits for the two actors told to exit here.
  ~link_fixture() {
    caf::anon_send_exit(link1, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(link2, caf::exit_reason::user_shutdown);
  }
};

protocol::node_advert advert(strings funs, strings locs = {},
                             std::map<std::string, strings> fun_locs = {}) {
  protocol::node_advert a;
  a.funs = std::move(funs);
  a.locs = std::move(locs);
  a.fun_locs = std::move(fun_locs);
  a.cluster_id = "c";
  return a;
}

protocol::gossip_entry entry(const std::string& url, strings funs, double last_seen,
                             strings locs = {}) {
  protocol::gossip_entry e;
  e.url = url;
  e.advert = advert(std::move(funs), std::move(locs));
  e.advert.advertised_urls = {url};
  e.last_seen = last_seen;
  return e;
}

strings urls(const std::vector<route>& rs) {
  strings out;
  for (const auto& r : rs)
    out.push_back(r.url);
  std::sort(out.begin(), out.end());
  return out;
}

strings sorted(strings xs) {
  std::sort(xs.begin(), xs.end());
  return xs;
}

const std::string A = "ws://127.0.0.1:1001";
const std::string B = "ws://127.0.0.1:1002";

} // namespace

TEST_CASE("routing_table: a HELLO makes a peer known; it is routable only while its link is up") {
  link_fixture f;
  f.table.hello(A, advert({"echo", "train"}, {"gpu"}), 100);
  REQUIRE(f.table.contains(A));
  auto p = f.table.find(A);
  REQUIRE(p);
  CHECK(p->has_advert);
  CHECK(p->last_seen == 100);
  CHECK_FALSE(static_cast<bool>(p->link));
  CHECK(f.table.candidates("train", {"gpu"}).empty()); // no link yet

  f.table.set_link(A, f.link1);
  auto c = f.table.candidates("train", {"gpu"});
  REQUIRE(c.size() == 1);
  CHECK(c[0].url == A);
  CHECK(c[0].link == f.link1);

  f.table.set_link(A, nullptr);
  CHECK(f.table.candidates("train", {"gpu"}).empty());
  CHECK(f.table.contains(A)); // link down: still a member
}

TEST_CASE("routing_table: later HELLOs merge (only new functions are announced)") {
  link_fixture f;
  f.table.hello(A, advert({"f", "g"}, {"ra"}), 100);
  f.table.set_link(A, f.link1);
  // A function registered after start: HELLO with just it and its fun_locs.
  f.table.hello(A, advert({"h"}, {}, {{"h", {"gpu"}}}), 101);
  auto p = f.table.find(A);
  REQUIRE(p);
  CHECK(sorted(p->advert.funs) == strings{"f", "g", "h"});
  CHECK(p->advert.locs == strings{"ra"}); // an empty locs does not erase them
  CHECK(p->advert.fun_locs.at("h") == strings{"gpu"});
  CHECK(p->last_seen == 101);
  CHECK(urls(f.table.candidates("f", {"ra"})) == strings{A});
  CHECK(urls(f.table.candidates("h", {"ra", "gpu"})) == strings{A});
  CHECK(f.table.candidates("f", {"gpu"}).empty()); // gpu is h's own resource
  // The link survives a HELLO.
  CHECK(f.table.find(A)->link == f.link1);
}

TEST_CASE("routing_table: a full HELLO (first on a connection) replaces the advert") {
  link_fixture f;
  f.table.hello(A, advert({"f", "g"}, {"ra"}, {{"g", {"gpu"}}}), 100, true);
  f.table.set_link(A, f.link1);
  // A restarted without g and with other resources: its new connection's
  // first HELLO is its whole advert.
  f.table.hello(A, advert({"f"}, {"rb"}), 200, true);
  auto p = f.table.find(A);
  REQUIRE(p);
  CHECK(p->advert.funs == strings{"f"});
  CHECK(p->advert.locs == strings{"rb"});
  CHECK(p->advert.fun_locs.empty());
  CHECK(p->last_seen == 200);
  CHECK(p->link == f.link1); // the link is not part of the advert
  CHECK(f.table.candidates("g", {}).empty());
  CHECK(f.table.candidates("f", {"ra"}).empty());
  CHECK(urls(f.table.candidates("f", {"rb"})) == strings{A});
}

TEST_CASE("routing_table: candidates match node locs union the function's fun_locs") {
  link_fixture f;
  f.table.hello(A, advert({"train", "echo"}, {"dataset-1"}, {{"train", {"gpu"}}}), 100);
  f.table.hello(B, advert({"train"}, {"gpu", "dataset-1"}), 100);
  f.table.set_link(A, f.link1);
  f.table.set_link(B, f.link2);
  CHECK(urls(f.table.candidates("train", {})) == strings{A, B});
  CHECK(urls(f.table.candidates("train", {"gpu"})) == strings{A, B});
  CHECK(urls(f.table.candidates("train", {"gpu", "dataset-1"})) == strings{A, B});
  CHECK(urls(f.table.candidates("echo", {"dataset-1"})) == strings{A});
  CHECK(f.table.candidates("echo", {"gpu"}).empty()); // fun_locs are per function
  CHECK(f.table.candidates("train", {"gpu", "tpu"}).empty());
  CHECK(f.table.candidates("nope", {}).empty());
}

TEST_CASE("routing_table: a link without any advert is not a candidate") {
  link_fixture f;
  f.table.set_link(A, f.link1); // link up before its HELLO answer arrived
  CHECK(f.table.contains(A));
  CHECK_FALSE(f.table.find(A)->has_advert);
  CHECK(f.table.candidates("echo", {}).empty());
  f.table.set_link(B, nullptr); // unknown peer, no link: nothing recorded
  CHECK_FALSE(f.table.contains(B));
}

TEST_CASE("routing_table: gossip keeps the newest entry per URL") {
  routing_table t;
  CHECK(t.gossip(entry(A, {"f"}, 100, {"ra"}))); // new peer: link to it
  CHECK(t.find(A)->advert.funs == strings{"f"});
  CHECK_FALSE(t.gossip(entry(A, {"old"}, 90))); // older news: ignored
  CHECK(t.find(A)->advert.funs == strings{"f"});
  CHECK(t.find(A)->last_seen == 100);
  CHECK_FALSE(t.gossip(entry(A, {"same"}, 100))); // not newer: ignored
  CHECK(t.find(A)->advert.funs == strings{"f"});
  CHECK_FALSE(t.gossip(entry(A, {"f", "g"}, 110, {"rb"}))); // newer: replaces, not new
  CHECK(t.find(A)->advert.funs == strings{"f", "g"});
  CHECK(t.find(A)->advert.locs == strings{"rb"});
  CHECK(t.find(A)->last_seen == 110);
}

TEST_CASE("routing_table: gossip about a peer known only by its link fills in its advert") {
  link_fixture f;
  f.table.set_link(A, f.link1);
  CHECK_FALSE(f.table.gossip(entry(A, {"f"}, 5))); // known already, but had no advert
  CHECK(f.table.find(A)->has_advert);
  CHECK(urls(f.table.candidates("f", {})) == strings{A});
}

TEST_CASE("routing_table: remove leaves a tombstone that stale gossip cannot undo") {
  routing_table t;
  t.hello(A, advert({"f"}), 100);
  t.remove(A, 200); // GOODBYE at t=200
  CHECK_FALSE(t.contains(A));
  CHECK_FALSE(t.gossip(entry(A, {"f"}, 150))); // from before it left
  CHECK_FALSE(t.gossip(entry(A, {"f"}, 200)));
  CHECK_FALSE(t.contains(A));
  CHECK(t.gossip(entry(A, {"f"}, 201))); // it came back: new again
  CHECK(t.contains(A));
}

TEST_CASE("routing_table: a HELLO after remove brings the peer back at once") {
  routing_table t;
  t.remove(A, 200);
  t.hello(A, advert({"f"}), 150); // our clock may lag the tombstone's
  CHECK(t.contains(A));
  t.remove(A, 300);
  t.hello(A, advert({"g"}), 301);
  CHECK(t.find(A)->advert.funs == strings{"g"}); // a fresh advert, not merged
}

TEST_CASE("routing_table: expire drops silent peers but never one with a live link") {
  link_fixture f;
  f.table.hello(A, advert({"f"}), 100);
  f.table.hello(B, advert({"f"}), 100);
  f.table.set_link(B, f.link2); // B: link up, though not refreshed either
  CHECK(f.table.expire(120, 30).empty()); // within the timeout
  auto gone = f.table.expire(131, 30);
  CHECK(gone == strings{A});
  CHECK_FALSE(f.table.contains(A));
  CHECK(f.table.contains(B));
  // The expired peer's tombstone is its last_seen: older gossip is ignored,
  // newer news brings it back.
  CHECK_FALSE(f.table.gossip(entry(A, {"f"}, 100)));
  CHECK_FALSE(f.table.contains(A));
  CHECK(f.table.gossip(entry(A, {"f"}, 125)));
  CHECK(f.table.contains(A));
  // B's link goes down: now it expires like any other.
  f.table.set_link(B, nullptr);
  CHECK(f.table.expire(200, 30) == strings{A, B});
}

TEST_CASE("routing_table: touch refreshes last_seen and postpones expiry") {
  routing_table t;
  t.hello(A, advert({"f"}), 100);
  t.touch(A, 150);
  t.touch(A, 120); // never backwards
  CHECK(t.find(A)->last_seen == 150);
  CHECK(t.expire(170, 30).empty());
  t.touch(B, 150); // unknown: no entry made
  CHECK_FALSE(t.contains(B));
}

TEST_CASE("routing_table: tombstones are dropped after four timeouts") {
  routing_table t;
  t.remove(A, 100);
  CHECK(t.expire(100 + 4 * 30 - 1, 30).empty());
  CHECK_FALSE(t.gossip(entry(A, {"f"}, 99))); // still blocked
  t.expire(100 + 4 * 30 + 1, 30);              // tombstone gone
  CHECK(t.gossip(entry(A, {"f"}, 99)));
}

TEST_CASE("routing_table: peers() lists every known peer with its link state") {
  link_fixture f;
  f.table.hello(A, advert({"f"}), 100);
  f.table.gossip(entry(B, {"g"}, 100));
  f.table.set_link(A, f.link1);
  auto ps = f.table.peers();
  REQUIRE(ps.size() == 2);
  std::sort(ps.begin(), ps.end(), [](const peer_info& x, const peer_info& y) { return x.url < y.url; });
  CHECK(ps[0].url == A);
  CHECK(static_cast<bool>(ps[0].link));
  CHECK(ps[1].url == B);
  CHECK_FALSE(static_cast<bool>(ps[1].link));
  CHECK_FALSE(f.table.find("ws://nowhere:1").has_value());
}

TEST_CASE_FIXTURE(link_fixture, "routing_table: an unresponsive peer is flagged until heard or relinked") {
  table.hello("ws://a:1", advert({"f"}), 100.0, true);
  table.set_link("ws://a:1", link1);
  auto c = table.candidates("f", {});
  REQUIRE(c.size() == 1);
  CHECK_FALSE(c[0].unresponsive);
  table.set_unresponsive("ws://a:1", link1, true);
  c = table.candidates("f", {});
  REQUIRE(c.size() == 1); // still a candidate: the caller decides (last resort)
  CHECK(c[0].unresponsive);
  table.set_unresponsive("ws://a:1", link1, false);
  CHECK_FALSE(table.candidates("f", {})[0].unresponsive);
  table.set_unresponsive("ws://a:1", link1, true);
  table.set_link("ws://a:1", link2); // a new link starts afresh
  CHECK_FALSE(table.candidates("f", {})[0].unresponsive);
  table.set_unresponsive("ws://a:1", link1, true); // the old link's word no longer counts
  CHECK_FALSE(table.candidates("f", {})[0].unresponsive);
  table.set_unresponsive("ws://nobody:9", link1, true); // unknown peers are ignored
  CHECK_FALSE(table.contains("ws://nobody:9"));
}

TEST_CASE_FIXTURE(link_fixture, "routing_table: a second HELLO on the connection adds functions, once each") {
  strings many;
  for (int i = 0; i < 20000; ++i)
    many.push_back("f" + std::to_string(i));
  table.hello("ws://a:1", advert(many), 100.0, true);
  strings more = {"f5", "g1", "f19999", "g1", "g2"};
  table.hello("ws://a:1", advert(more), 101.0, false);
  auto p = table.find("ws://a:1");
  REQUIRE(p.has_value());
  CHECK(p->advert.funs.size() == 20002u);
  CHECK(std::count(p->advert.funs.begin(), p->advert.funs.end(), "g1") == 1);
  CHECK(p->advert.funs.back() == "g2");
}
