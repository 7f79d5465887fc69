// Modules: shared libraries that `mpreg-node --module PATH` loads to register
// functions, so a node can serve your code without a rebuild.
//
//   // my_functions.cpp, built as a shared library against these headers
//   #include <mpreg/module.hpp>
//   MPREG_MODULE(node) {
//     node.add_function("add", [](int a, int b) { return a + b; });
//   }
//
// The module is compiled with the same compiler and mpreg headers as the
// node (it calls into the node's own code; it does not link libmpreg).
// A module whose MPREG_MODULE_ABI differs from the node's is refused.
#pragma once

#include "mpreg/node.hpp"

/// Bumped whenever node's or the registration types' layout changes.
#define MPREG_MODULE_ABI 1

/// Defines the module's entry point: `MPREG_MODULE(n) { n.add_function(...); }`.
/// Throwing from it makes the node refuse to start, with the exception's text.
#define MPREG_MODULE(node_var)                                                                    \
  extern "C" int mpreg_module_abi() { return MPREG_MODULE_ABI; }                                  \
  extern "C" void mpreg_module_register(::mpreg::node& node_var)
