// Whole-file reads with the size checked before anything is read, so that a
// huge or hostile file is refused before memory is spent on it.
#include "host/base/read_file.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "host/base/error.hpp"

namespace mlp {

// Closes the FILE on every path out of read_file, exceptions included.
namespace {
struct FileCloser {
    FILE* f;
    ~FileCloser() {
        if (f != nullptr) std::fclose(f);
    }
};
}  // namespace

std::string read_file(const std::string& path, uint64_t limit_bytes) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        int err = errno;
        if (err == ENOENT) throw DataError(path, "file not found");
        throw DataError(path, std::string("cannot read file: ") + std::strerror(err));
    }
    FileCloser closer{f};
    // fstat on the open descriptor, not stat on the name, so that the size belongs to the file
    // actually being read.
    struct stat st;
    if (::fstat(::fileno(f), &st) != 0) {
        throw DataError(path, std::string("cannot read file: ") + std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) throw DataError(path, "is a directory, not a file");
    if (!S_ISREG(st.st_mode)) throw DataError(path, "is not a regular file");
    const uint64_t size = uint64_t(st.st_size);
    if (size > limit_bytes) {
        throw DataError(path, "file is " + std::to_string(size) +
                                  " bytes, over the size limit of " +
                                  std::to_string(limit_bytes) + " bytes");
    }
    std::string bytes(size_t(size), '\0');
    size_t got = size == 0 ? 0 : std::fread(&bytes[0], 1, bytes.size(), f);
    if (got != bytes.size()) {
        if (std::ferror(f)) {
            throw DataError(path, std::string("read error: ") + std::strerror(errno));
        }
        throw DataError(path, "file shrank while being read: got " + std::to_string(got) +
                                  " of " + std::to_string(size) + " bytes");
    }
    return bytes;
}

}  // namespace mlp
