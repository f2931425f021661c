// The mlptrain command line: subcommands train, eval and predict. Returns the process
// exit code: 0 success, 1 runtime failure (bad data, CUDA error), 2 usage
// error (unknown flag, bad value).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace mlp {

int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err);

// "64,256" -> {64, 256}: positive sizes up to 2^20, comma-separated. Throws
// CLI::ValidationError naming `flag` otherwise, which the CLI turns into exit 2.
std::vector<int64_t> parse_size_list(const std::string& text, const std::string& flag);

}  // namespace mlp
