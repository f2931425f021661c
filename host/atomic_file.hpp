// Whole-file reads and writes. Writes go through a temporary file and rename(), so that a crash,
// a full disk or a bad path never leaves a half-written model where a good one used to be.
#pragma once

#include <cstdint>
#include <string>

namespace mlp {

// Writes `bytes` to `path` + ".tmp.<pid>" in the same directory (rename() is only atomic within
// one filesystem), fsyncs it and renames it over `path`. On any failure the temporary file is
// removed, `path` is left as it was, and an Error says "cannot write <what> to <path>: <reason>".
void write_file_atomic(const std::string& path, const std::string& bytes,
                       const std::string& what = "file");

// The whole contents of a regular file. Throws DataError when the file is missing, unreadable,
// not a regular file, or larger than limit_bytes (checked before anything is read).
std::string read_file(const std::string& path, uint64_t limit_bytes);

}  // namespace mlp
