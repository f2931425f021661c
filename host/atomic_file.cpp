// POSIX file I/O for models: every call is checked, because a silently short model file is only
// discovered when someone tries to load it, long after the training run that wrote it.
#include "host/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "host/error.hpp"

namespace mlp {

static std::string parent_dir(const std::string& path) {
    size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

// Makes the rename itself durable. Best effort: by now the new file is in place, so reporting a
// failure here would tell the caller the write failed when it did not.
static void sync_dir(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)::fsync(fd);
    (void)::close(fd);
}

void write_file_atomic(const std::string& path, const std::string& bytes,
                       const std::string& what) {
    const std::string tmp = path + ".tmp." + std::to_string(long(::getpid()));
    FILE* f = std::fopen(tmp.c_str(), "wb");
    int err = 0;
    if (f == nullptr) {
        err = errno;
    } else {
        if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
            err = errno;
        }
        if (err == 0 && std::fflush(f) != 0) err = errno;
        if (err == 0 && ::fsync(::fileno(f)) != 0) err = errno;
        // fclose can report a deferred write error (e.g. on NFS), so its result counts too.
        if (std::fclose(f) != 0 && err == 0) err = errno;
        if (err == 0 && std::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
        if (err != 0) (void)std::remove(tmp.c_str());
    }
    if (err != 0) {
        throw Error("cannot write " + what + " to " + path + ": " + std::strerror(err));
    }
    sync_dir(parent_dir(path));
}

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
