// IDX reader: every defect becomes a DataError naming the file, and nothing is allocated on the
// strength of an unchecked header or an unbounded gzip stream.
#include "host/data/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <utility>

#include "host/base/error.hpp"

namespace mlp {

namespace fs = std::filesystem;

namespace {

constexpr uint32_t k_magic_images = 0x00000803;
constexpr uint32_t k_magic_labels = 0x00000801;
constexpr uint8_t k_type_ubyte = 0x08;
constexpr size_t k_chunk_bytes = size_t(1) << 18;

// What one kind of IDX file must look like; lets images and labels share the header checks.
struct IdxKind {
    const char* what;  // "images" or "labels", for messages
    uint32_t magic;
    int n_dims;
};

constexpr IdxKind k_images{"images", k_magic_images, 3};
constexpr IdxKind k_labels{"labels", k_magic_labels, 1};

struct IdxHeader {
    uint64_t dims[3] = {0, 0, 0};
    uint64_t header_bytes = 0;
    uint64_t data_bytes = 0;
};

}  // namespace

static std::string hex32(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

static std::string hex8(uint32_t v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", v & 0xffu);
    return buf;
}

static uint32_t read_be32(const uint8_t* p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

static bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
    return !__builtin_mul_overflow(a, b, out);
}

static std::string dims_text(const IdxHeader& h, int n_dims) {
    std::string s;
    for (int i = 0; i < n_dims; ++i) {
        if (i > 0) s += " x ";
        s += std::to_string(h.dims[i]);
    }
    return s;
}

// The filesystem tells us why a file cannot be opened more precisely than a failed stream does.
[[noreturn]] static void throw_unreadable(const std::string& path, int saved_errno) {
    std::error_code ec;
    fs::file_status st = fs::status(path, ec);
    if (!fs::exists(st)) throw DataError(path, "file not found");
    if (fs::is_directory(st)) throw DataError(path, "is a directory, not a file");
    throw DataError(path, std::string("cannot read file: ") + std::strerror(saved_errno));
}

static std::ifstream open_input(const std::string& path) {
    errno = 0;
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw_unreadable(path, EISDIR);
    std::ifstream in(path, std::ios::binary);
    if (!in) throw_unreadable(path, errno);
    return in;
}

static uint64_t file_size_of(const std::string& path) {
    std::error_code ec;
    uintmax_t size = fs::file_size(path, ec);
    if (ec) throw DataError(path, "cannot determine file size: " + ec.message());
    return size;
}

static void check_file_size(const std::string& path, uint64_t size, uint64_t limit_bytes) {
    if (size > limit_bytes) {
        throw DataError(path, "file is " + std::to_string(size) +
                                  " bytes, over the size limit of " + std::to_string(limit_bytes) +
                                  " bytes");
    }
}

static std::vector<uint8_t> read_body(std::ifstream& in, const std::string& path, uint64_t size) {
    std::vector<uint8_t> bytes(size);
    in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(size));
    if (uint64_t(in.gcount()) != size) {
        throw DataError(path, "read error: got " + std::to_string(in.gcount()) + " of " +
                                  std::to_string(size) + " bytes");
    }
    return bytes;
}

static bool is_gzip(const uint8_t* bytes, uint64_t size) {
    return size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

// Checks the magic number word: zero bytes, data type, dimension count, in that order, so that
// the message says which of them is wrong. `head` holds min(size, 4) bytes at least.
static void check_magic(const uint8_t* head, uint64_t size, const std::string& path,
                        const IdxKind& kind) {
    if (size == 0) {
        throw DataError(path, "empty file (expected IDX " + std::string(kind.what) + ")");
    }
    if (size < 4) {
        throw DataError(path,
                        "file too short for an IDX header: " + std::to_string(size) + " bytes");
    }
    uint32_t magic = read_be32(head);
    std::string expected = hex32(kind.magic) + " (IDX " + kind.what + ")";
    if (head[0] != 0 || head[1] != 0) {
        throw DataError(path, "wrong magic number " + hex32(magic) + ", expected " + expected);
    }
    if (head[2] != k_type_ubyte) {
        throw DataError(path, "unsupported IDX data type " + hex8(head[2]) + " in magic " +
                                  hex32(magic) + ", expected " + hex8(k_type_ubyte) +
                                  " (unsigned byte) as in " + expected);
    }
    if (head[3] != kind.n_dims) {
        throw DataError(path, "wrong IDX dimension count " + std::to_string(head[3]) +
                                  " in magic " + hex32(magic) + ", expected " +
                                  std::to_string(kind.n_dims) + " as in " + expected);
    }
}

static uint64_t header_bytes_of(const IdxKind& kind) {
    return 4 + 4 * uint64_t(kind.n_dims);
}

// Checks the header of an IDX file of `size` bytes; `head` holds its first min(size, header
// size) bytes at least, so a reader can check a header before it reads or allocates the body.
// With `whole` false, `size` is only what a gzip stream has decoded so far, and the checks that
// need the final size (truncated data, trailing bytes) are left to a later call.
static IdxHeader parse_header(const uint8_t* head, uint64_t size, bool whole,
                              const std::string& path, const IdxKind& kind, uint64_t limit_bytes) {
    check_magic(head, size, path, kind);
    IdxHeader h;
    h.header_bytes = header_bytes_of(kind);
    if (size < h.header_bytes) {
        throw DataError(path, "file too short for an IDX header: " + std::to_string(size) +
                                  " bytes, need " + std::to_string(h.header_bytes));
    }
    uint64_t product = 1;
    bool overflow = false;
    for (int i = 0; i < kind.n_dims; ++i) {
        h.dims[i] = read_be32(head + 4 + 4 * i);
        if (h.dims[i] == 0) {
            throw DataError(path, "zero-sized dimension " + std::to_string(i) + " in header (" +
                                      dims_text(h, i + 1) + ")");
        }
        overflow = overflow || !checked_mul(product, h.dims[i], &product);
    }
    if (overflow || product > uint64_t(std::numeric_limits<int64_t>::max()) - h.header_bytes) {
        throw DataError(path, "dimensions " + dims_text(h, kind.n_dims) +
                                  " overflow: their product does not fit in 64 bits");
    }
    h.data_bytes = product;
    // Separate from "truncated" so that a hostile header is reported as such, not as a short file.
    if (h.data_bytes > limit_bytes) {
        throw DataError(path, "header claims " + dims_text(h, kind.n_dims) + " = " +
                                  std::to_string(h.data_bytes) +
                                  " data bytes, over the size limit of " +
                                  std::to_string(limit_bytes) + " bytes");
    }
    if (!whole) return h;
    uint64_t expected = h.header_bytes + h.data_bytes;
    uint64_t present = size - h.header_bytes;
    if (size < expected) {
        throw DataError(path, "truncated: header " + dims_text(h, kind.n_dims) + " needs " +
                                  std::to_string(h.data_bytes) + " data bytes, but only " +
                                  std::to_string(present) + " are present");
    }
    if (size > expected) {
        throw DataError(path, std::to_string(size - expected) + " trailing bytes after the " +
                                  std::to_string(h.data_bytes) + " data bytes that header " +
                                  dims_text(h, kind.n_dims) + " declares");
    }
    return h;
}

static void throw_over_limit(const std::string& path, uint64_t limit_bytes) {
    throw DataError(path, "gzip stream decompresses to more than the size limit of " +
                              std::to_string(limit_bytes) + " bytes");
}

// Holds the z_stream so that every exit path, including exceptions, releases zlib's state.
namespace {
struct Inflater {
    z_stream zs{};
    explicit Inflater(const std::string& path) {
        // 15 + 32: largest window, and accept both gzip and zlib wrappers.
        if (inflateInit2(&zs, 15 + 32) != Z_OK) {
            throw DataError(path, "cannot initialise zlib inflate");
        }
    }
    ~Inflater() { inflateEnd(&zs); }
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;
};
}  // namespace

static std::string zlib_reason(const z_stream& zs, int rc) {
    if (zs.msg != nullptr) return zs.msg;
    return "zlib error " + std::to_string(rc);
}

// Inflates in chunks, member after member, stopping as soon as the output would pass the limit so
// that a small "gzip bomb" never becomes a large allocation. With `kind`, the IDX header is
// checked as soon as it has been decoded, and inflating stops once the output passes what the
// header declares: the decoded size is unknown up front, so this is the earliest point at which
// a lying header can be refused. `refill(&data)` points `data` at the next piece of compressed
// input and returns its size (at most k_chunk_bytes; 0 at the end), so that a file is inflated as
// it is read and never held whole.
template <class Refill>
static std::vector<uint8_t> inflate_from(Refill&& refill, const std::string& path,
                                         uint64_t limit_bytes, const IdxKind* kind) {
    Inflater inf(path);
    z_stream& zs = inf.zs;
    bool input_left = true;
    std::vector<uint8_t> out_buf(k_chunk_bytes);
    std::vector<uint8_t> out;
    IdxHeader header;
    bool header_checked = kind == nullptr;
    bool capped_by_header = false;
    uint64_t cap = limit_bytes;  // the most output allowed; tightened by the header
    bool in_member = true;       // false right after a member ended
    bool out_full = false;       // inflate may hold output back when the last call filled out_buf
    for (;;) {
        if (zs.avail_in == 0 && input_left) {
            const uint8_t* data = nullptr;
            const size_t n = refill(&data);
            zs.next_in = const_cast<Bytef*>(data);
            zs.avail_in = uInt(n);
            input_left = n > 0;
        }
        if (zs.avail_in == 0 && !(in_member && out_full)) break;
        if (!in_member) {
            // Concatenated members are legal gzip; anything else after a member is not.
            if (zs.next_in[0] != 0x1f) {
                throw DataError(path, "unexpected bytes after the end of the gzip stream");
            }
            if (inflateReset(&zs) != Z_OK) throw DataError(path, "cannot reset zlib inflate");
            in_member = true;
        }
        zs.next_out = out_buf.data();
        zs.avail_out = uInt(out_buf.size());
        int rc = inflate(&zs, Z_NO_FLUSH);
        if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR) {
            throw DataError(path, "broken gzip stream: " + zlib_reason(zs, rc));
        }
        if (rc == Z_MEM_ERROR) throw DataError(path, "out of memory while inflating gzip data");
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            throw DataError(path, "broken gzip stream: " + zlib_reason(zs, rc));
        }
        out_full = zs.avail_out == 0;
        size_t produced = out_buf.size() - zs.avail_out;
        if (out.size() + produced > cap) {
            if (!capped_by_header) throw_over_limit(path, limit_bytes);
            throw DataError(path, "trailing bytes after the " + std::to_string(header.data_bytes) +
                                      " data bytes that header " + dims_text(header, kind->n_dims) +
                                      " declares: the gzip stream decompresses to more than " +
                                      std::to_string(cap) + " bytes");
        }
        out.insert(out.end(), out_buf.begin(), out_buf.begin() + std::ptrdiff_t(produced));
        if (!header_checked && out.size() >= header_bytes_of(*kind)) {
            header = parse_header(out.data(), out.size(), false, path, *kind, limit_bytes);
            header_checked = true;
            if (header.header_bytes + header.data_bytes < cap) {
                cap = header.header_bytes + header.data_bytes;
                capped_by_header = true;
            }
        }
        if (rc == Z_STREAM_END) in_member = false;
    }
    if (in_member) {
        throw DataError(path,
                        "truncated gzip stream: the file ends before the end of the "
                        "compressed data");
    }
    return out;
}

// Inflates data held in memory; zlib counts input in uInt, so it goes in chunk by chunk.
static std::vector<uint8_t> inflate_memory(const uint8_t* data, uint64_t size,
                                           const std::string& path, uint64_t limit_bytes,
                                           const IdxKind* kind) {
    uint64_t pos = 0;
    auto refill = [&](const uint8_t** next) {
        const uint64_t n = std::min(size - pos, uint64_t(k_chunk_bytes));
        *next = data + pos;
        pos += n;
        return size_t(n);
    };
    return inflate_from(refill, path, limit_bytes, kind);
}

// The decoded contents of an IDX file held in memory; with `kind`, see inflate_from.
static std::vector<uint8_t> decode_bytes(std::vector<uint8_t> bytes, const std::string& path,
                                         uint64_t limit_bytes, const IdxKind* kind) {
    if (is_gzip(bytes.data(), bytes.size())) {
        return inflate_memory(bytes.data(), bytes.size(), path, limit_bytes, kind);
    }
    check_file_size(path, bytes.size(), limit_bytes);
    return bytes;
}

// The decoded contents of a file. With `kind`, a raw file's header is checked against the file
// size and the limit before the body is read, so a file that will be refused is never loaded. A
// gzip file is inflated as it is read: only its decoded size counts against the limit.
static std::vector<uint8_t> read_bytes(const std::string& path, uint64_t limit_bytes,
                                       const IdxKind* kind) {
    std::ifstream in = open_input(path);
    const uint64_t size = file_size_of(path);
    uint8_t head[16] = {};
    const uint64_t n_head = std::min(size, uint64_t(sizeof head));
    in.read(reinterpret_cast<char*>(head), std::streamsize(n_head));
    in.seekg(0);
    if (!in) throw DataError(path, "read error at start of file");
    if (is_gzip(head, n_head)) {
        std::vector<uint8_t> in_buf(k_chunk_bytes);
        auto refill = [&](const uint8_t** next) {
            in.read(reinterpret_cast<char*>(in_buf.data()), std::streamsize(in_buf.size()));
            if (in.bad()) throw DataError(path, "read error in gzip data");
            *next = in_buf.data();
            return size_t(in.gcount());
        };
        return inflate_from(refill, path, limit_bytes, kind);
    }
    check_file_size(path, size, limit_bytes);
    if (kind != nullptr && n_head >= header_bytes_of(*kind)) {
        parse_header(head, size, true, path, *kind, limit_bytes);
    }
    return read_body(in, path, size);
}

std::vector<uint8_t> decode_maybe_gzip(const std::vector<uint8_t>& bytes, const std::string& path,
                                       uint64_t limit_bytes) {
    return decode_bytes(bytes, path, limit_bytes, nullptr);
}

std::vector<uint8_t> read_file_maybe_gzip(const std::string& path, uint64_t limit_bytes) {
    return read_bytes(path, limit_bytes, nullptr);
}

// Takes the bytes by value so that the read path can hand over its buffer: the pixels then reuse
// it instead of doubling the peak memory of a large file.
static IdxImages images_from(std::vector<uint8_t> bytes, const std::string& path,
                             uint64_t limit_bytes) {
    IdxHeader h = parse_header(bytes.data(), bytes.size(), true, path, k_images, limit_bytes);
    constexpr uint64_t k_int_max = uint64_t(std::numeric_limits<int>::max());
    if (h.dims[1] > k_int_max || h.dims[2] > k_int_max) {
        throw DataError(path, "image size " + std::to_string(h.dims[1]) + " x " +
                                  std::to_string(h.dims[2]) + " is too large");
    }
    IdxImages out;
    out.n_items = int64_t(h.dims[0]);
    out.n_rows = int(h.dims[1]);
    out.n_cols = int(h.dims[2]);
    bytes.erase(bytes.begin(), bytes.begin() + std::ptrdiff_t(h.header_bytes));
    out.pixels = std::move(bytes);
    return out;
}

static IdxLabels labels_from(std::vector<uint8_t> bytes, const std::string& path,
                             uint64_t limit_bytes) {
    IdxHeader h = parse_header(bytes.data(), bytes.size(), true, path, k_labels, limit_bytes);
    IdxLabels out;
    out.n_items = int64_t(h.dims[0]);
    bytes.erase(bytes.begin(), bytes.begin() + std::ptrdiff_t(h.header_bytes));
    out.labels = std::move(bytes);
    return out;
}

IdxImages parse_idx_images(const std::vector<uint8_t>& bytes, const std::string& path) {
    return images_from(bytes, path, std::numeric_limits<uint64_t>::max());
}

IdxLabels parse_idx_labels(const std::vector<uint8_t>& bytes, const std::string& path) {
    return labels_from(bytes, path, std::numeric_limits<uint64_t>::max());
}

IdxImages decode_idx_images(std::vector<uint8_t> file_bytes, const std::string& path,
                            uint64_t limit_bytes) {
    return images_from(decode_bytes(std::move(file_bytes), path, limit_bytes, &k_images), path,
                       limit_bytes);
}

IdxLabels decode_idx_labels(std::vector<uint8_t> file_bytes, const std::string& path,
                            uint64_t limit_bytes) {
    return labels_from(decode_bytes(std::move(file_bytes), path, limit_bytes, &k_labels), path,
                       limit_bytes);
}

IdxImages read_idx_images(const std::string& path, uint64_t limit_bytes) {
    return images_from(read_bytes(path, limit_bytes, &k_images), path, limit_bytes);
}

IdxLabels read_idx_labels(const std::string& path, uint64_t limit_bytes) {
    return labels_from(read_bytes(path, limit_bytes, &k_labels), path, limit_bytes);
}

}  // namespace mlp
