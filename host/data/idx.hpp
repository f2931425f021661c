// IDX file reader (the MNIST family's format): big-endian header, magic
// 0x00000803 for images (n x rows x cols bytes) and 0x00000801 for labels.
// Files may be raw or gzip-compressed (detected by content, not by name).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mlp {

struct IdxImages {
    int64_t n_items = 0;
    int n_rows = 0;
    int n_cols = 0;
    std::vector<uint8_t> pixels;  // n_items * n_rows * n_cols, row-major, sample-contiguous
    int64_t n_features() const { return int64_t(n_rows) * n_cols; }
};

struct IdxLabels {
    int64_t n_items = 0;
    std::vector<uint8_t> labels;
};

// Default cap on the decoded size of one IDX file; a header that claims more
// is refused before anything is allocated.
constexpr uint64_t k_default_idx_limit_bytes = uint64_t(4) << 30;

// Whole file contents, gunzipped when the file starts with the gzip magic.
// Throws DataError on unreadable files, broken gzip streams, or file or decoded
// sizes above limit_bytes.
std::vector<uint8_t> read_file_maybe_gzip(const std::string& path,
                                          uint64_t limit_bytes = k_default_idx_limit_bytes);

// The same for contents already in memory (the fuzz targets' entry point);
// `path` is used only in messages.
std::vector<uint8_t> decode_maybe_gzip(const std::vector<uint8_t>& bytes, const std::string& path,
                                       uint64_t limit_bytes = k_default_idx_limit_bytes);

// Parse an in-memory IDX image/label file; `path` is used only in messages.
IdxImages parse_idx_images(const std::vector<uint8_t>& bytes, const std::string& path);
IdxLabels parse_idx_labels(const std::vector<uint8_t>& bytes, const std::string& path);

// A whole IDX file in memory, raw or gzip, checked as read_idx_images checks a
// file: a gzip stream's header is checked as soon as it is decoded, and
// inflating stops once the output passes what the header declares.
IdxImages decode_idx_images(std::vector<uint8_t> file_bytes, const std::string& path,
                            uint64_t limit_bytes = k_default_idx_limit_bytes);
IdxLabels decode_idx_labels(std::vector<uint8_t> file_bytes, const std::string& path,
                            uint64_t limit_bytes = k_default_idx_limit_bytes);

// A raw file's header is checked against the file's size and limit_bytes
// before the body is read; nothing is ever allocated on a header's word.
IdxImages read_idx_images(const std::string& path,
                          uint64_t limit_bytes = k_default_idx_limit_bytes);
IdxLabels read_idx_labels(const std::string& path,
                          uint64_t limit_bytes = k_default_idx_limit_bytes);

}  // namespace mlp
