// A fresh, uniquely named folder for a test's files. CTest runs each test in
// its own process, several at once, and more than one build's suite may run
// on one machine, so fixed names would collide.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace mlp::test {

inline std::filesystem::path make_temp_dir(const std::string& stem) {
    std::string templ = (std::filesystem::temp_directory_path() / (stem + "-XXXXXX")).string();
    if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + templ);
    return templ;
}

}  // namespace mlp::test
