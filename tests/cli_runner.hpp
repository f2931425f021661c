// Runs the mlptrain command line in-process and captures what it prints, so
// tests check exit codes and messages without spawning the binary.
#pragma once

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "host/cli/cli.hpp"

namespace mlp::test {

struct CliResult {
    int code;
    std::string out;
    std::string err;
};

// `args` without the program name: {"train", "--data", dir, ...}.
inline CliResult run_mlptrain(std::vector<std::string> args) {
    args.insert(args.begin(), "mlptrain");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    std::ostringstream out, err;
    const int code = run_cli(int(argv.size()), argv.data(), out, err);
    return {code, out.str(), err.str()};
}

// Whole file as bytes ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The arguments `base` followed by `extra`: one command line with a test's own flags added.
inline std::vector<std::string> concat(std::vector<std::string> base,
                                       const std::vector<std::string>& extra) {
    base.insert(base.end(), extra.begin(), extra.end());
    return base;
}

}  // namespace mlp::test
