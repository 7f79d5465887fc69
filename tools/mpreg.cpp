// mpreg: the command-line client. Calls a function, sends a whole request,
// or asks a node for its cluster status, and prints the result as JSON.
//
// Exit status: 0 ok, 1 the node answered with an error, 2 usage error
// (bad flags, unreadable or malformed input), 3 connection error or deadline
// exceeded (the client's timeout or the node's error 1007), 4 the result
// could not be written.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "mpreg/client.hpp"
#include "mpreg_build_config.h"

namespace {

constexpr int exit_ok = 0;
constexpr int exit_server_error = 1;
constexpr int exit_usage = 2;
constexpr int exit_connection = 3;
constexpr int exit_output = 4;

/// The result could not be written (stdout closed or full).
struct output_error {
  std::string message;
};

const char* const help_text = R"(usage: mpreg [--url URL] [--timeout SECONDS] COMMAND ...

Commands:
  call FUN [ARG...] [--kw KEY=VALUE]... [--locs a,b,...]
        Call one function and print its value.
  request FILE|-
        Send a whole request read from FILE (or stdin with -) and print its
        result map r. The input is a JSON array of commands, or a full request
        object {"role": "rpc", "cmds": [...], "timeout": ..., "u": ...} (role
        rpc when given; a u is added when missing; --timeout replaces its
        timeout).
  peers
        Ask the node for its cluster status and print the answer.

Options:
  --url URL          node to talk to (default: $MPREG_URL, else ws://127.0.0.1:6666)
  --timeout SECONDS  deadline of the request (default 30); the node is told
                     too. It also bounds connecting (default 5 s).
  --kw KEY=VALUE     keyword argument of `call` (repeatable)
  --locs a,b         resources the executing node must have (`call`)
  --pretty, --compact  force the output format (default: pretty on a terminal,
                     one compact line otherwise)
  -h, --help         this text
  --version          print the version

Each ARG and each --kw VALUE is parsed as JSON when it is valid JSON (42,
true, null, [1,2], {"a":1}, "\"quoted\""), else taken as a plain string. Put
-- before arguments that start with --.

Output and errors: the result goes to stdout as JSON. Errors go to stderr as
`error CODE: message` (and `details: JSON` when the node sent details).
Exit status: 0 ok, 1 the node answered with an error, 2 usage error,
3 connection error (code 0) or deadline exceeded (code 1007, from the node
or the client), 4 the result could not be written to stdout (a pipe that
closes early ends mpreg with SIGPIPE, as it does cat).

Examples:
  mpreg call echo "hi there!"
  mpreg call echos a 2 '{"k":[1]}'
  mpreg call echo --kw arg=hello
  mpreg --url ws://10.0.0.5:9001 call train --locs gpu,dataset-1 --timeout 120
  mpreg peers

  # MPREG's README example: three commands, the later ones use |first's result
  mpreg request - <<'EOF'
  [{"name": "|first",  "fun": "echo",  "args": ["hi there!"]},
   {"name": "|second", "fun": "echo",  "args": ["|first"]},
   {"name": "|third",  "fun": "echos", "args": ["|first", "AND ME TOO"]}]
  EOF
  # prints {"|second": "hi there!", "|third": ["hi there!", "AND ME TOO"]}
)";

struct usage_error {
  std::string message;
};

struct cli {
  std::string url;
  std::optional<double> timeout;
  std::optional<bool> pretty;
  std::string command;
  std::vector<std::string> positional;
  mpreg::json::object kwargs;
  std::vector<std::string> locs;
  bool help = false;
  bool version = false;
};

mpreg::json arg_value(const std::string& text) {
  try {
    return mpreg::json::parse(text);
  } catch (const mpreg::json_error&) {
    return mpreg::json(text);
  }
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ','))
    if (!item.empty())
      out.push_back(item);
  return out;
}

double parse_seconds(const std::string& text) {
  try {
    std::size_t used = 0;
    double v = std::stod(text, &used);
    if (used == text.size() && v > 0 && std::isfinite(v))
      return v;
  } catch (const std::exception&) {
  }
  throw usage_error{"--timeout needs a positive number of seconds, got '" + text + "'"};
}

cli parse_args(int argc, char** argv) {
  cli c;
  if (const char* env = std::getenv("MPREG_URL"); env && *env)
    c.url = env;
  else
    c.url = "ws://127.0.0.1:6666";
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (options_done || a.size() < 2 || a[0] != '-' || (a[1] != '-' && a != "-h")) {
      if (c.command.empty())
        c.command = a;
      else
        c.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    std::string name = a, value;
    bool has_value = false;
    if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    auto need_value = [&]() -> std::string {
      if (has_value)
        return value;
      if (i + 1 >= argc)
        throw usage_error{name + " needs a value"};
      return argv[++i];
    };
    if (name == "-h" || name == "--help") {
      c.help = true;
    } else if (name == "--version") {
      c.version = true;
    } else if (name == "--url") {
      c.url = need_value();
    } else if (name == "--timeout") {
      c.timeout = parse_seconds(need_value());
    } else if (name == "--kw") {
      std::string kv = need_value();
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0)
        throw usage_error{"--kw needs KEY=VALUE, got '" + kv + "'"};
      std::string key = kv.substr(0, eq);
      mpreg::json v = arg_value(kv.substr(eq + 1));
      bool replaced = false;
      for (auto& m : c.kwargs)
        if (m.key == key) {
          m.value = v;
          replaced = true;
        }
      if (!replaced)
        c.kwargs.push_back(mpreg::json_member{key, std::move(v)});
    } else if (name == "--locs") {
      for (auto& l : split_list(need_value()))
        c.locs.push_back(l);
    } else if (name == "--pretty") {
      c.pretty = true;
    } else if (name == "--compact") {
      c.pretty = false;
    } else {
      throw usage_error{"unknown option " + name};
    }
  }
  return c;
}

std::string read_input(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    return text;
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw usage_error{"cannot read '" + path + "': it is a directory"};
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw usage_error{"cannot read '" + path + "'"};
  try {
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception& e) {
    throw usage_error{"cannot read '" + path + "': " + e.what()};
  }
  return text;
}

// The request file: an array of commands, or a whole request object.
mpreg::json request_message(const std::string& text, const std::string& source,
                            const std::optional<double>& timeout) {
  mpreg::json in;
  try {
    in = mpreg::json::parse(text);
  } catch (const mpreg::json_error& e) {
    throw usage_error{"cannot parse " + source + " as JSON: " + e.what()};
  }
  mpreg::json msg;
  if (in.is_array()) {
    msg = mpreg::json::make_object({{"role", "rpc"}, {"cmds", in}});
  } else if (in.is_object()) {
    msg = std::move(in);
    const mpreg::json* role = msg.find("role");
    if (!role)
      msg["role"] = "rpc";
    else if (!(role->is_string() && role->as_string() == "rpc"))
      throw usage_error{source + ": a request object's role must be \"rpc\", got " +
                        role->dump()};
  } else {
    throw usage_error{source + " must hold a JSON array of commands or a request object, got " +
                      in.type_name()};
  }
  if (timeout) // the command line wins over the file, as mpreg-node's flags do
    msg["timeout"] = *timeout;
  return msg;
}

void print_result(const mpreg::json& v, const cli& c) {
  bool pretty = c.pretty ? *c.pretty : ::isatty(STDOUT_FILENO) == 1;
  std::string out = pretty ? v.dump_pretty() : v.dump();
  out += '\n';
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0)
    throw output_error{std::string("cannot write the result to stdout: ") + std::strerror(errno)};
}

void print_error(const mpreg::client_error& e) {
  std::cerr << "error " << e.code() << ": " << e.what() << "\n";
  if (!e.details().is_null())
    std::cerr << "details: " << e.details().dump() << "\n";
}

int run(const cli& c) {
  if (c.command != "call" && c.command != "request" && c.command != "peers")
    throw usage_error{"unknown command '" + c.command + "' (call, request or peers)"};
  if (c.command != "call" && (!c.kwargs.empty() || !c.locs.empty()))
    throw usage_error{"--kw and --locs belong to `call`"};

  // Read and check the input before connecting: usage errors come first.
  mpreg::json message;
  if (c.command == "call") {
    if (c.positional.empty())
      throw usage_error{"call needs a function name"};
  } else if (c.command == "request") {
    if (c.positional.size() != 1)
      throw usage_error{"request needs exactly one FILE (or - for stdin)"};
    const std::string& path = c.positional[0];
    message = request_message(read_input(path), path == "-" ? "stdin" : path, c.timeout);
  } else if (!c.positional.empty()) {
    throw usage_error{"peers takes no arguments"};
  }

  mpreg::client_options opts;
  if (c.timeout) // --timeout bounds the connect too (a day at most: 1e300 s fits no clock)
    opts.connect_timeout = std::chrono::milliseconds(
      std::max<long long>(1, static_cast<long long>(std::min(*c.timeout, 86400.0) * 1000.0)));
  mpreg::client client(c.url, opts);
  client.connect();

  mpreg::json result;
  if (c.command == "call") {
    mpreg::json::array args;
    for (std::size_t i = 1; i < c.positional.size(); ++i)
      args.push_back(arg_value(c.positional[i]));
    result = client.call(c.positional[0], std::move(args), c.kwargs, c.locs, c.timeout);
  } else if (c.command == "request") {
    mpreg::request_options ro;
    ro.timeout = c.timeout;
    result = client.request_raw(std::move(message), ro).get();
  } else {
    result = client.cluster_status(c.timeout);
  }
  print_result(result, c);
  return exit_ok;
}

} // namespace

int main(int argc, char** argv) {
  try {
    cli c = parse_args(argc, argv);
    if (c.help || c.version) {
      if (c.help)
        std::cout << help_text;
      else
        std::cout << "mpreg " << MPREG_VERSION << "\n";
      if (!std::cout.flush())
        throw output_error{"cannot write to stdout"};
      return exit_ok;
    }
    if (c.command.empty()) {
      std::cerr << help_text;
      return exit_usage;
    }
    return run(c);
  } catch (const usage_error& e) {
    std::cerr << "mpreg: " << e.message << " (see mpreg --help)\n";
    return exit_usage;
  } catch (const output_error& e) {
    std::cerr << "mpreg: " << e.message << "\n";
    return exit_output;
  } catch (const mpreg::rpc_exception& e) {
    print_error(e);
    return exit_server_error;
  } catch (const mpreg::client_error& e) { // connection_error, timeout_error (also the node's 1007)
    print_error(e);
    return exit_connection;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return exit_connection;
  }
}
