// mpreg-baseline: the transport limit that mpreg-node is measured against.
//
// The same stack as the node (websocketpp + standalone Asio + RapidJSON) with
// nothing else: no actors, no library, one Asio thread that parses, evaluates
// and answers each request inside the message handler. It knows only echo and
// echos with top-level references, which is all the benchmark workloads use.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

namespace {

using server_t = websocketpp::server<websocketpp::config::asio>;
using hdl_t = websocketpp::connection_hdl;
using value_t = rapidjson::Value;
using writer_t = rapidjson::Writer<rapidjson::StringBuffer>;

// A command's result without copying any JSON: a literal of the request
// document, another command's result, or an array of those (echos).
struct node {
  enum kind_t { literal, ref, array } kind = literal;
  const value_t* v = nullptr; // literal
  std::size_t ref_index = 0;  // ref
  std::vector<node> items;    // array
};

struct failure {
  int code;
  const char* message;
};

// Evaluates one request; members are reused between requests so the steady
// state allocates almost nothing.
class evaluator {
public:
  // Writes the whole response frame into out.
  void answer(char* frame, rapidjson::StringBuffer& out) {
    out.Clear();
    // Stack buffers for the DOM: RapidJSON's documented trick to avoid malloc.
    char value_buf[65536];
    char parse_buf[4096];
    rapidjson::MemoryPoolAllocator<> value_alloc(value_buf, sizeof value_buf);
    rapidjson::MemoryPoolAllocator<> parse_alloc(parse_buf, sizeof parse_buf);
    rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>,
                               rapidjson::MemoryPoolAllocator<>>
      doc(&value_alloc, sizeof parse_buf, &parse_alloc);
    doc.ParseInsitu(frame);
    const value_t* u = nullptr;
    if (!doc.HasParseError() && doc.IsObject()) {
      auto it = doc.FindMember("u");
      if (it != doc.MemberEnd() && it->value.IsString())
        u = &it->value;
    }
    writer_t w(out);
    try {
      if (doc.HasParseError() || !doc.IsObject())
        throw failure{1006, "malformed JSON"};
      auto role = doc.FindMember("role");
      if (role == doc.MemberEnd() || !role->value.IsString() ||
          std::strcmp(role->value.GetString(), "rpc") != 0)
        throw failure{1004, "invalid role"};
      if (!u)
        throw failure{1006, "missing u"};
      auto cmds = doc.FindMember("cmds");
      if (cmds == doc.MemberEnd() || !cmds->value.IsArray() || cmds->value.Empty())
        throw failure{1006, "cmds must be a non-empty array"};
      load(cmds->value);
      for (std::size_t i = 0; i < cmds_.size(); ++i)
        eval(i);
    } catch (const failure& f) {
      out.Clear();
      w.Reset(out);
      w.StartObject();
      w.Key("r");
      w.Null();
      w.Key("error");
      w.StartObject();
      w.Key("code");
      w.Int(f.code);
      w.Key("message");
      w.String(f.message);
      w.Key("details");
      w.Null();
      w.EndObject();
      write_u(w, u);
      w.EndObject();
      return;
    }
    w.StartObject();
    w.Key("r");
    w.StartObject();
    for (const auto& c : cmds_) {
      if (c.consumed)
        continue;
      w.Key(c.name.data(), static_cast<rapidjson::SizeType>(c.name.size()));
      write(w, c.result);
    }
    w.EndObject();
    w.Key("error");
    w.Null();
    write_u(w, u);
    w.EndObject();
  }

private:
  struct cmd {
    std::string_view name;
    std::string_view fun;
    const value_t* args = nullptr;
    enum { fresh, visiting, done } state = fresh;
    bool consumed = false;
    node result;
  };

  static void write_u(writer_t& w, const value_t* u) {
    w.Key("u");
    if (u)
      w.String(u->GetString(), u->GetStringLength());
    else
      w.String("unknown");
  }

  static std::string_view str(const value_t& v) { return {v.GetString(), v.GetStringLength()}; }

  void load(const value_t& cmds) {
    if (cmds.Size() > 100000)
      throw failure{1006, "too many commands"};
    cmds_.clear();
    cmds_.resize(cmds.Size());
    by_name_.clear();
    for (rapidjson::SizeType i = 0; i < cmds.Size(); ++i) {
      const auto& c = cmds[i];
      if (!c.IsObject())
        throw failure{1006, "a command must be an object"};
      auto name = c.FindMember("name");
      auto fun = c.FindMember("fun");
      if (name == c.MemberEnd() || !name->value.IsString() || fun == c.MemberEnd() ||
          !fun->value.IsString())
        throw failure{1006, "a command needs string name and fun"};
      cmds_[i].name = str(name->value);
      cmds_[i].fun = str(fun->value);
      auto args = c.FindMember("args");
      if (args != c.MemberEnd()) {
        if (!args->value.IsArray())
          throw failure{1006, "args must be an array"};
        cmds_[i].args = &args->value;
      }
      if (!by_name_.emplace(cmds_[i].name, i).second)
        throw failure{1006, "duplicate command name"};
    }
  }

  // Resolves one top-level argument of command i.
  node arg(std::size_t i, const value_t& a) {
    if (a.IsString()) {
      auto it = by_name_.find(str(a));
      if (it != by_name_.end() && it->second != i) {
        eval(it->second);
        cmds_[it->second].consumed = true;
        return node{node::ref, nullptr, it->second, {}};
      }
    }
    return node{node::literal, &a, 0, {}};
  }

  void eval(std::size_t i) {
    cmd& c = cmds_[i];
    if (c.state == cmd::done)
      return;
    if (c.state == cmd::visiting)
      throw failure{1006, "dependency cycle"};
    c.state = cmd::visiting;
    std::size_t n = c.args ? c.args->Size() : 0;
    if (c.fun == "echo") {
      if (n != 1)
        throw failure{1003, "echo takes exactly one argument"};
      node r = arg(i, (*c.args)[0]);
      cmds_[i].result = std::move(r); // cmds_ is not resized: reference stays valid
    } else if (c.fun == "echos") {
      node r{node::array, nullptr, 0, {}};
      r.items.reserve(n);
      for (rapidjson::SizeType k = 0; k < n; ++k)
        r.items.push_back(arg(i, (*c.args)[k]));
      cmds_[i].result = std::move(r);
    } else {
      throw failure{1001, "command not found"};
    }
    cmds_[i].state = cmd::done;
  }

  void write(writer_t& w, const node& n) const {
    switch (n.kind) {
    case node::literal:
      n.v->Accept(w);
      break;
    case node::ref:
      write(w, cmds_[n.ref_index].result);
      break;
    case node::array:
      w.StartArray();
      for (const auto& item : n.items)
        write(w, item);
      w.EndArray();
      break;
    }
  }

  std::vector<cmd> cmds_;
  std::unordered_map<std::string_view, std::size_t> by_name_;
};

int usage(const char* why) {
  std::fprintf(stderr, "mpreg-baseline: %s\nusage: mpreg-baseline [--port P]\n", why);
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  unsigned long port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--port" && i + 1 < argc) {
      char* end = nullptr;
      port = std::strtoul(argv[++i], &end, 10);
      if (*end != '\0' || port > 65535)
        return usage("bad --port");
    } else if (a == "-h" || a == "--help") {
      usage("the MPREG transport baseline (echo/echos on the Asio thread)");
      return 0;
    } else {
      return usage(("unknown argument " + a).c_str());
    }
  }

  server_t srv;
  evaluator ev;
  rapidjson::StringBuffer out;
  std::set<hdl_t, std::owner_less<hdl_t>> conns;

  // websocketpp logs every frame to stdout by default; stdout carries only the
  // listening line, errors go to stderr.
  srv.clear_access_channels(websocketpp::log::alevel::all);
  srv.clear_error_channels(websocketpp::log::elevel::all);
  srv.set_error_channels(websocketpp::log::elevel::rerror | websocketpp::log::elevel::fatal);
  srv.init_asio();
  srv.set_reuse_addr(true);
  srv.set_close_handshake_timeout(1000);

  // Every handler is set before listen: connections copy them at creation.
  srv.set_open_handler([&](hdl_t h) {
    conns.insert(h);
    std::error_code ec;
    // Latency matters more than coalescing here: this is the lower bound.
    srv.get_con_from_hdl(h)->get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec);
  });
  srv.set_close_handler([&](hdl_t h) { conns.erase(h); });
  srv.set_fail_handler([&](hdl_t h) { conns.erase(h); });
  srv.set_message_handler([&](hdl_t h, server_t::message_ptr msg) {
    std::string& payload = msg->get_raw_payload();
    ev.answer(&payload[0], out);
    std::error_code ec;
    srv.send(h, out.GetString(), out.GetSize(), websocketpp::frame::opcode::text, ec);
  });

  asio::signal_set sigs(srv.get_io_service(), SIGINT, SIGTERM);
  sigs.async_wait([&](const std::error_code& err, int) {
    if (err)
      return;
    // clear() restores the default action, so a second signal kills at once.
    std::error_code ec;
    // Stopping aborts the pending accept, which websocketpp reports as an error.
    srv.clear_error_channels(websocketpp::log::elevel::all);
    sigs.clear(ec);
    sigs.cancel(ec);
    srv.stop_listening(ec);
    // run() returns only once every connection is closed too.
    for (const auto& h : std::set<hdl_t, std::owner_less<hdl_t>>(conns))
      srv.close(h, websocketpp::close::status::going_away, "shutdown", ec);
  });

  std::error_code ec;
  srv.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                     static_cast<unsigned short>(port)),
             ec);
  if (!ec)
    srv.start_accept(ec);
  if (ec) {
    std::fprintf(stderr, "mpreg-baseline: cannot listen on port %lu: %s\n", port,
                 ec.message().c_str());
    return 1;
  }
  auto bound = srv.get_local_endpoint(ec);
  std::printf("mpreg-baseline listening on ws://127.0.0.1:%u\n", unsigned{bound.port()});
  std::fflush(stdout);
  srv.run();
  return 0;
}
