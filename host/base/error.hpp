// Error type of the library: every failure that a user can cause (bad file,
// bad flag, CUDA error) becomes an mlp::Error with a message that names the
// file or flag and the defect. Library code never calls exit().
#pragma once

#include <stdexcept>
#include <string>

namespace mlp {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A problem with an input file: the message starts with the path.
class DataError : public Error {
public:
    DataError(const std::string& path, const std::string& defect)
        : Error(path + ": " + defect) {}
};

// A bad flag or flag value: the library's validation throws it, naming the
// flag, and the command line maps it to exit code 2.
class UsageError : public Error {
public:
    UsageError(const std::string& flag, const std::string& defect)
        : Error(flag + ": " + defect), flag_(flag) {}
    const std::string& flag() const { return flag_; }

private:
    std::string flag_;
};

}  // namespace mlp
