// Test helpers that build IDX files (raw and gzip) in a per-test temporary folder, so that no
// data blob is ever committed and every malformed case is spelled out in the test itself.
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "host/base/error.hpp"

namespace mlp::test {

using Bytes = std::vector<uint8_t>;

inline void put_be32(Bytes& out, uint32_t v) {
    out.push_back(uint8_t(v >> 24));
    out.push_back(uint8_t(v >> 16));
    out.push_back(uint8_t(v >> 8));
    out.push_back(uint8_t(v));
}

// Image file bytes; pixel (item, r, c) = (item * 7 + r * 3 + c) mod 256, so that tests can check
// placement without storing expected arrays.
inline uint8_t fixture_pixel(uint64_t item, uint64_t r, uint64_t c) {
    return uint8_t((item * 7 + r * 3 + c) & 0xff);
}

inline Bytes idx_images_bytes(uint32_t n, uint32_t rows, uint32_t cols) {
    Bytes out;
    put_be32(out, 0x00000803);
    put_be32(out, n);
    put_be32(out, rows);
    put_be32(out, cols);
    for (uint32_t i = 0; i < n; ++i)
        for (uint32_t r = 0; r < rows; ++r)
            for (uint32_t c = 0; c < cols; ++c) out.push_back(fixture_pixel(i, r, c));
    return out;
}

inline Bytes idx_labels_bytes(const std::vector<uint8_t>& labels) {
    Bytes out;
    put_be32(out, 0x00000801);
    put_be32(out, uint32_t(labels.size()));
    out.insert(out.end(), labels.begin(), labels.end());
    return out;
}

// A bare header with arbitrary magic and dimensions, for the malformed-header cases.
inline Bytes idx_header(uint32_t magic, const std::vector<uint32_t>& dims) {
    Bytes out;
    put_be32(out, magic);
    for (uint32_t d : dims) put_be32(out, d);
    return out;
}

// One gzip member (deflate with the gzip wrapper: windowBits 15 + 16).
inline Bytes gzip_bytes(const Bytes& data) {
    z_stream zs{};
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        throw std::runtime_error("deflateInit2 failed");
    }
    Bytes out(deflateBound(&zs, uLong(data.size())) + 32);
    zs.next_in = const_cast<Bytef*>(data.data());
    zs.avail_in = uInt(data.size());
    zs.next_out = out.data();
    zs.avail_out = uInt(out.size());
    int rc = deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
    return out;
}

inline void write_bytes(const std::string& path, const Bytes& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    if (!f) throw std::runtime_error("cannot write fixture " + path);
}

inline Bytes read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// The message of the DataError that `fn` throws, or a test failure when it throws none.
template <class Fn>
std::string data_error_of(Fn&& fn) {
    try {
        fn();
    } catch (const DataError& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected DataError, nothing was thrown";
    return "";
}

// A fresh folder under the system temp folder, removed with everything in it at scope exit.
class TempDir {
public:
    TempDir() {
        const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
        std::string stem = "mlptrain-";
        if (info != nullptr) stem += std::string(info->test_suite_name()) + "-" + info->name();
        for (char& ch : stem) {
            if (ch == '/') ch = '_';
        }
        std::string templ = (std::filesystem::temp_directory_path() / (stem + "-XXXXXX")).string();
        if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = templ;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

    // Writes `bytes` to `name`, gzip-compressed when `gzip` is set; returns the full path.
    std::string write(const std::string& name, const Bytes& bytes, bool gzip = false) const {
        std::string p = file(name);
        write_bytes(p, gzip ? gzip_bytes(bytes) : bytes);
        return p;
    }

private:
    std::string path_;
};

// The four standard files of a tiny data set; fields are public so tests can break one.
struct DatasetFiles {
    uint32_t rows = 5;
    uint32_t cols = 3;
    std::vector<uint8_t> train_labels = {0, 1, 2, 3, 1, 0};
    std::vector<uint8_t> test_labels = {3, 2, 0};
    uint32_t test_rows = 5;
    uint32_t test_cols = 3;
    uint32_t train_images = 6;
    uint32_t test_images = 3;
    bool gzip = false;
    bool dotted = false;  // "train-images.idx3-ubyte" spelling

    std::string name(const std::string& canonical) const {
        std::string n = canonical;
        if (dotted) n[n.find("-idx")] = '.';
        return gzip ? n + ".gz" : n;
    }

    void write_to(const TempDir& dir, const std::string& sub = "") const {
        std::string base = sub.empty() ? "" : sub + "/";
        if (!sub.empty()) std::filesystem::create_directories(dir.file(sub));
        dir.write(base + name("train-images-idx3-ubyte"),
                  idx_images_bytes(train_images, rows, cols), gzip);
        dir.write(base + name("train-labels-idx1-ubyte"), idx_labels_bytes(train_labels), gzip);
        dir.write(base + name("t10k-images-idx3-ubyte"),
                  idx_images_bytes(test_images, test_rows, test_cols), gzip);
        dir.write(base + name("t10k-labels-idx1-ubyte"), idx_labels_bytes(test_labels), gzip);
    }
};

}  // namespace mlp::test
