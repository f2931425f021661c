// POSIX file I/O for models: every call is checked, because a silently short model file is only
// discovered when someone tries to load it, long after the training run that wrote it.
#include "host/base/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "host/base/error.hpp"

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

}  // namespace mlp
