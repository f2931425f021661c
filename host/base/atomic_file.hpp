// Whole-file writes. They go through a temporary file and rename(), so that a crash,
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

}  // namespace mlp
