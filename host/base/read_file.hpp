// Whole-file reads for every input file (models, PNG pictures, metrics).
#pragma once

#include <cstdint>
#include <string>

namespace mlp {

// The whole contents of a regular file. Throws DataError when the file is missing, unreadable,
// not a regular file, or larger than limit_bytes (checked before anything is read).
std::string read_file(const std::string& path, uint64_t limit_bytes);

}  // namespace mlp
