// The mlptrain command line: subcommands train, eval and predict. Returns the process
// exit code: 0 success, 1 runtime failure (bad data, CUDA error), 2 usage
// error (unknown flag, bad value).
#pragma once

#include <ostream>

namespace mlp {

int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace mlp
