#include "protocol/codec.hpp"

#include "json/append.hpp"
#include "protocol/internal_reader.hpp"
#include "protocol/request_reader.hpp"

#include <chrono>
#include <random>
#include <string>

namespace mpreg {

json rpc_error::to_json() const {
  return json::make_object({{"code", code}, {"message", message}, {"details", details}});
}

rpc_error rpc_error::from_json(const json& j) {
  rpc_error e;
  if (!j.is_object()) {
    e.message = j.is_string() ? j.as_string() : j.dump();
    return e;
  }
  if (const json* c = j.find("code"); c && c->is_integer())
    e.code = static_cast<int>(c->as_int());
  if (const json* m = j.find("message"); m && m->is_string())
    e.message = m->as_string();
  if (const json* d = j.find("details"))
    e.details = *d;
  return e;
}

} // namespace mpreg

namespace mpreg::protocol {

namespace {

[[noreturn]] void invalid(const std::string& what, json details = {}) {
  throw protocol_error(rpc_error(error_code::invalid_request, what, std::move(details)));
}

json field_detail(const std::string& field) {
  return json::make_object({{"field", field}});
}

const json* member(const json& obj, const char* key) {
  const json* v = obj.find(key);
  return (v && !v->is_null()) ? v : nullptr;
}

json* mutable_member(json& obj, const char* key) {
  json* v = obj.find(key);
  return (v && !v->is_null()) ? v : nullptr;
}

const std::string& required_string(const json& obj, const char* key, const std::string& path) {
  const json* v = obj.find(key);
  if (!v)
    invalid("missing field '" + path + "'", field_detail(path));
  if (!v->is_string())
    invalid("field '" + path + "' must be a string, got " + v->type_name(), field_detail(path));
  return v->as_string();
}

// An optional string field: absent or null gives "".
std::string optional_string(const json& obj, const char* key, const std::string& path) {
  const json* v = member(obj, key);
  if (!v)
    return {};
  if (!v->is_string())
    invalid("field '" + path + "' must be a string, got " + v->type_name(), field_detail(path));
  return v->as_string();
}

std::vector<std::string> string_list(const json* v, const std::string& path) {
  std::vector<std::string> out;
  if (!v || v->is_null())
    return out;
  if (!v->is_array())
    invalid("field '" + path + "' must be an array of strings, got " + v->type_name(),
            field_detail(path));
  const auto& items = v->as_array();
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!items[i].is_string())
      invalid("field '" + path + "' must be an array of strings, got " +
                  items[i].type_name() + " at index " + std::to_string(i),
              field_detail(path));
    out.push_back(items[i].as_string());
  }
  return out;
}

// Decoders take the parsed frame by mutable reference and move its pieces out:
// a frame is decoded once and then dropped, so nothing is copied twice.
command decode_command(json& c, std::size_t index) {
  std::string path = "cmds[" + std::to_string(index) + "]";
  if (!c.is_object())
    invalid("'" + path + "' must be an object, got " + std::string(c.type_name()),
            field_detail(path));
  command out;
  out.name = required_string(c, "name", path + ".name");
  out.fun = required_string(c, "fun", path + ".fun");
  if (json* a = mutable_member(c, "args")) {
    if (!a->is_array())
      invalid("field '" + path + ".args' must be an array, got " + a->type_name(),
              field_detail(path + ".args"));
    out.args = std::move(a->as_array());
  }
  if (json* k = mutable_member(c, "kwargs")) {
    if (!k->is_object())
      invalid("field '" + path + ".kwargs' must be an object, got " + k->type_name(),
              field_detail(path + ".kwargs"));
    out.kwargs = std::move(k->as_object());
  }
  out.locs = string_list(c.find("locs"), path + ".locs");
  return out;
}

std::string read_u(const json& frame) {
  if (const json* u = frame.find("u"); u && u->is_string())
    return u->as_string();
  return "unknown";
}

internal_rpc decode_internal_rpc(json& f) {
  internal_rpc m;
  m.u = required_string(f, "u", "u");
  m.command = required_string(f, "command", "command");
  if (json* a = mutable_member(f, "args")) {
    if (!a->is_array())
      invalid(std::string("field 'args' must be an array, got ") + a->type_name(),
              field_detail("args"));
    m.args = std::move(a->as_array());
  }
  if (json* k = mutable_member(f, "kwargs")) {
    if (!k->is_object())
      invalid(std::string("field 'kwargs' must be an object, got ") + k->type_name(),
              field_detail("kwargs"));
    m.kwargs = std::move(k->as_object());
  }
  return m;
}

internal_answer decode_internal_answer(json& f) {
  internal_answer m;
  m.u = required_string(f, "u", "u");
  json* a = f.find("answer");
  if (a)
    m.answer = std::move(*a);
  if (const json* e = member(f, "error"))
    m.error = rpc_error::from_json(*e);
  if (!a && !m.error)
    invalid("missing field 'answer' (an internal-answer carries its answer or its error)",
            field_detail("answer"));
  return m;
}

server_message decode_server(const json& f) {
  server_message m;
  m.u = read_u(f);
  const json* s = f.find("server");
  if (!s)
    invalid("missing field 'server'", field_detail("server"));
  if (!s->is_object())
    invalid(std::string("field 'server' must be an object, got ") + s->type_name(),
            field_detail("server"));
  m.what = required_string(*s, "what", "server.what");
  if (m.what == "HELLO") {
    // A node that does not say its cluster cannot be told apart from one of
    // another cluster (MPREG 2.0's HELLO requires it too).
    if (!member(*s, "cluster_id"))
      invalid("missing field 'server.cluster_id'", field_detail("server.cluster_id"));
    m.advert = advert_from_json(*s);
  }
  return m;
}

gossip decode_gossip(const json& f) {
  gossip g;
  g.u = read_u(f);
  g.cluster_id = optional_string(f, "cluster_id", "cluster_id");
  const json* peers = member(f, "peers");
  if (peers && !peers->is_array())
    invalid("field 'peers' must be an array", field_detail("peers"));
  if (peers)
    for (std::size_t i = 0; i < peers->as_array().size(); ++i) {
      const json& p = peers->as_array()[i];
      std::string path = "peers[" + std::to_string(i) + "]";
      if (!p.is_object())
        invalid("gossip peers must be objects, got " + std::string(p.type_name()) + " at index " +
                  std::to_string(i),
                field_detail(path));
      gossip_entry e;
      e.url = required_string(p, "url", path + ".url");
      e.advert = advert_from_json(p);
      // Without it an entry could never be judged stale, nor expire.
      const json* ls = p.find("last_seen");
      if (!ls)
        invalid("missing field '" + path + ".last_seen'", field_detail(path + ".last_seen"));
      if (!ls->is_number())
        invalid("field '" + path + ".last_seen' must be a number, got " + ls->type_name(),
                field_detail(path + ".last_seen"));
      e.last_seen = ls->as_double();
      g.peers.push_back(std::move(e));
    }
  return g;
}

response decode_response(json& f) {
  response r;
  r.u = read_u(f);
  if (const json* e = member(f, "error"))
    r.error = rpc_error::from_json(*e);
  else if (json* v = f.find("r"))
    r.r = std::move(*v);
  else
    r.r = json{};
  return r;
}

request decode_request_owned(json& f) {
  request r;
  r.u = required_string(f, "u", "u");
  json* cmds = f.find("cmds");
  if (!cmds)
    invalid("missing field 'cmds'", field_detail("cmds"));
  if (!cmds->is_array())
    invalid(std::string("field 'cmds' must be an array, got ") + cmds->type_name(),
            field_detail("cmds"));
  if (cmds->as_array().empty())
    invalid("field 'cmds' must not be empty", field_detail("cmds"));
  r.cmds.reserve(cmds->size());
  std::size_t i = 0;
  for (auto& c : cmds->as_array())
    r.cmds.push_back(decode_command(c, i++));
  if (const json* t = member(f, "timeout")) {
    if (!t->is_number())
      invalid(std::string("field 'timeout' must be a number of seconds, got ") + t->type_name(),
              field_detail("timeout"));
    double secs = t->as_double();
    if (!(secs > 0))
      invalid("field 'timeout' must be positive", field_detail("timeout"));
    r.timeout = secs;
  }
  return r;
}

inbound decode_owned(json& f) {
  decode_failure failure;
  try {
    if (!f.is_object())
      invalid(std::string("a frame must be a JSON object, got ") + f.type_name());
    failure.u = read_u(f);
    const json* role = f.find("role");
    if (!role || role->is_null()) {
      // Frames without a role are answers (clients and peer links read these).
      if (f.find("r") || f.find("error"))
        return decode_response(f);
      throw protocol_error(rpc_error(error_code::invalid_role, "missing field 'role'",
                                     field_detail("role")));
    }
    if (!role->is_string())
      throw protocol_error(rpc_error(error_code::invalid_role,
                                     std::string("field 'role' must be a string, got ") +
                                       role->type_name(),
                                     field_detail("role")));
    const std::string& name = role->as_string();
    if (name == "rpc")
      return decode_request_owned(f);
    if (name == "server")
      return decode_server(f);
    if (name == "internal-rpc")
      return decode_internal_rpc(f);
    if (name == "internal-answer")
      return decode_internal_answer(f);
    if (name == "gossip")
      return decode_gossip(f);
    throw protocol_error(rpc_error(error_code::invalid_role, "invalid role '" + name + "'",
                                   json::make_object({{"role", name}})));
  } catch (const protocol_error& e) {
    failure.error = e.error;
  } catch (const json_error& e) {
    failure.error = rpc_error(error_code::invalid_request, e.what());
  }
  return failure;
}

} // namespace

json string_array(const std::vector<std::string>& xs) {
  json::array a;
  a.reserve(xs.size());
  for (const auto& x : xs)
    a.emplace_back(x);
  return json{std::move(a)};
}

node_advert advert_from_json(const json& j) {
  node_advert a;
  a.funs = string_list(j.find("funs"), "funs");
  a.locs = string_list(j.find("locs"), "locs");
  a.cluster_id = optional_string(j, "cluster_id", "cluster_id");
  a.advertised_urls = string_list(j.find("advertised_urls"), "advertised_urls");
  if (const json* fl = member(j, "fun_locs")) {
    if (!fl->is_object())
      invalid(std::string("field 'fun_locs' must be an object, got ") + fl->type_name(),
              field_detail("fun_locs"));
    for (const auto& m : fl->as_object())
      a.fun_locs[m.key] = string_list(&m.value, "fun_locs." + m.key);
  }
  return a;
}

json to_json(const node_advert& a) {
  json::object fl;
  for (const auto& [f, locs] : a.fun_locs)
    fl.push_back(json_member{f, string_array(locs)});
  return json::make_object({{"funs", string_array(a.funs)},
                            {"locs", string_array(a.locs)},
                            {"cluster_id", a.cluster_id},
                            {"advertised_urls", string_array(a.advertised_urls)},
                            {"fun_locs", json{std::move(fl)}}});
}

request decode_request(const json& f) {
  json copy = f;
  return decode_request_owned(copy);
}

inbound decode_value(const json& f) {
  json copy = f;
  return decode_owned(copy);
}

inbound decode_value(json&& f) {
  return decode_owned(f);
}

std::string salvage_u(std::string_view t) {
  const std::string unknown = "unknown";
  std::size_t i = 0, n = t.size();
  auto skip_space = [&] {
    while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
      ++i;
  };
  auto skip_string = [&] { // t[i] is its opening quote
    for (++i; i < n; ++i) {
      if (t[i] == '\\')
        ++i;
      else if (t[i] == '"')
        return ++i, true;
    }
    return false;
  };
  skip_space();
  if (i >= n || t[i++] != '{')
    return unknown;
  for (;;) { // one member of the outer object per turn
    skip_space();
    std::size_t key = i;
    if (i >= n || t[i] != '"' || !skip_string())
      return unknown;
    bool is_u = t.substr(key, i - key) == "\"u\"";
    skip_space();
    if (i >= n || t[i++] != ':')
      return unknown;
    skip_space();
    if (is_u) { // the first "u" wins, as in the readers
      std::size_t value = i;
      if (i >= n || t[i] != '"' || !skip_string())
        return unknown;
      try {
        json u = json::parse(t.substr(value, i - value));
        return u.as_string();
      } catch (const json_error&) {
        return unknown; // a lone surrogate in u itself, say
      }
    }
    // Skip the value, counting brackets outside strings (no recursion).
    std::size_t depth = 0;
    while (i < n) {
      char c = t[i];
      if (c == '"') {
        if (!skip_string())
          return unknown;
        continue;
      }
      if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (depth == 0)
          break;
        --depth;
      } else if (c == ',' && depth == 0) {
        break;
      }
      ++i;
    }
    if (i >= n || t[i++] != ',')
      return unknown; // the object ended without a "u"
  }
}

namespace {
// Parses, then decodes; malformed text (or text our reader refuses: a
// number too large for a double, nesting deeper than 512) is a 1006 decode
// failure carrying the frame's "u" when one can be read.
inbound parse_and_decode(std::string_view text) {
  json value;
  try {
    value = json::parse(text);
  } catch (const json_error& e) {
    decode_failure f;
    f.u = salvage_u(text);
    f.error = rpc_error(error_code::invalid_request, e.what());
    return f;
  }
  return decode_owned(value);
}
} // namespace

inbound decode_frame(std::string&& frame) {
  // Most frames are well-formed requests, or calls and answers between
  // peers: read those without a tree for the envelope. Peers' frames begin
  // with their role (every node writes it first), so a glance picks the
  // reader; a declined attempt costs a parser's set-up.
  static constexpr std::string_view internal_prefix = "{\"role\":\"internal-";
  if (std::string_view(frame).substr(0, internal_prefix.size()) == internal_prefix) {
    if (auto m = read_internal(frame))
      return std::visit([](auto& x) -> inbound { return std::move(x); }, *m);
  } else if (auto r = read_request(frame)) {
    return std::move(*r);
  }
  // The text stays whole: a failure reads its "u" from it.
  return parse_and_decode(frame);
}

inbound decode(std::string_view frame) {
  return parse_and_decode(frame);
}

json to_json(const request& r) {
  json::array cmds;
  cmds.reserve(r.cmds.size());
  for (const auto& c : r.cmds)
    cmds.push_back(json::make_object({{"name", c.name},
                                      {"fun", c.fun},
                                      {"args", json{c.args}},
                                      {"kwargs", json{c.kwargs}},
                                      {"locs", string_array(c.locs)}}));
  json out = json::make_object({{"role", "rpc"}, {"u", r.u}, {"cmds", json{std::move(cmds)}}});
  if (r.timeout)
    out["timeout"] = *r.timeout;
  return out;
}

json to_json(const response& r) {
  if (r.error)
    return json::make_object({{"r", nullptr}, {"error", r.error->to_json()}, {"u", r.u}});
  return json::make_object({{"r", r.r ? *r.r : json{}}, {"error", nullptr}, {"u", r.u}});
}

std::string encode(const request& r) {
  return to_json(r).dump();
}

std::string encode(const response& r) {
  if (r.error)
    return to_json(r).dump();
  // Serialise the result in place, into one buffer: no copy of a possibly
  // large tree, no temporary text.
  std::string out;
  out.reserve(64 + r.u.size());
  out += "{\"r\":";
  if (r.r)
    r.r->dump_to(out);
  else
    out += "null";
  out += ",\"error\":null,\"u\":";
  detail::append_string(out, r.u);
  out += '}';
  return out;
}

std::string encode(const server_message& m) {
  json server = m.what == "HELLO" ? to_json(m.advert) : json::make_object({});
  json::object& o = server.as_object();
  o.insert(o.begin(), json_member{"what", m.what});
  return json::make_object({{"role", "server"}, {"u", m.u}, {"server", std::move(server)}}).dump();
}

// The two messages of every forwarded call are written around their values,
// not copied into a tree first (the fields in MPREG's order).
std::string encode(const internal_rpc& m) {
  std::string out;
  out.reserve(96 + m.command.size() + m.u.size());
  out += "{\"role\":\"internal-rpc\",\"command\":";
  detail::append_string(out, m.command);
  out += ",\"args\":";
  detail::append_array(out, m.args);
  out += ",\"kwargs\":";
  detail::append_object(out, m.kwargs);
  out += ",\"results\":{},\"u\":";
  detail::append_string(out, m.u);
  out += '}';
  return out;
}

std::string encode(const internal_answer& m) {
  std::string out;
  out.reserve(64 + m.u.size());
  out += "{\"role\":\"internal-answer\",\"answer\":";
  m.answer.dump_to(out);
  out += ",\"u\":";
  detail::append_string(out, m.u);
  if (m.error) {
    out += ",\"error\":";
    m.error->to_json().dump_to(out);
  }
  out += '}';
  return out;
}

std::string encode(const gossip& g) {
  json::array peers;
  for (const auto& e : g.peers) {
    json entry = to_json(e.advert);
    json::object& o = entry.as_object();
    o.insert(o.begin(), json_member{"url", e.url});
    entry["last_seen"] = e.last_seen;
    peers.push_back(std::move(entry));
  }
  return json::make_object({{"role", "gossip"},
                            {"cluster_id", g.cluster_id},
                            {"u", g.u},
                            {"peers", json{std::move(peers)}}})
    .dump();
}

std::string new_id() {
  static constexpr char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   static_cast<std::uint64_t>(
                                     std::chrono::steady_clock::now().time_since_epoch().count())};
  // 48 bits of milliseconds (sortable, like a ULID) then 80 random bits.
  auto ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
  std::string id(26, '0');
  for (int i = 9; i >= 0; --i) {
    id[static_cast<std::size_t>(i)] = alphabet[ms & 31];
    ms >>= 5;
  }
  std::uint64_t a = rng(), b = rng();
  for (std::size_t i = 10; i < 26; ++i) {
    std::uint64_t& src = i < 22 ? a : b;
    id[i] = alphabet[src & 31];
    src >>= 5;
  }
  return id;
}

} // namespace mpreg::protocol
