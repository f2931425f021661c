// Small in-memory data sets for training tests: each class has a prototype
// image and samples are noisy copies, so a network can learn them in a few
// steps. Also writes them as IDX files for CLI tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "host/base/rng.hpp"
#include "host/data/dataset.hpp"

namespace mlp::test {

inline Split synthetic_split(int64_t n, int rows, int cols, int n_classes, uint64_t seed) {
    Rng rng(seed, 77);
    const int64_t n_features = int64_t(rows) * cols;
    std::vector<uint8_t> prototypes(size_t(n_classes * n_features));
    Rng proto_rng(1234, 78);  // same prototypes for train and test
    for (auto& p : prototypes) p = uint8_t(proto_rng.below(256));
    Split split;
    split.images.n_items = n;
    split.images.n_rows = rows;
    split.images.n_cols = cols;
    split.labels.n_items = n;
    for (int64_t i = 0; i < n; ++i) {
        const int label = int(i % n_classes);
        split.labels.labels.push_back(uint8_t(label));
        for (int64_t f = 0; f < n_features; ++f) {
            const int v = int(prototypes[size_t(label * n_features + f)]) +
                          int(rng.below(81)) - 40;
            split.images.pixels.push_back(uint8_t(v < 0 ? 0 : v > 255 ? 255 : v));
        }
    }
    return split;
}

inline Dataset synthetic_dataset(int64_t n_train, int64_t n_test, int rows = 4, int cols = 5,
                                 int n_classes = 3, uint64_t seed = 5) {
    Dataset d;
    d.name = "synthetic";
    d.n_classes = n_classes;
    d.train = synthetic_split(n_train, rows, cols, n_classes, seed);
    d.test = synthetic_split(n_test, rows, cols, n_classes, seed + 1);
    return d;
}

inline void put_be32(std::ofstream& f, uint32_t v) {
    const char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
    f.write(b, 4);
}

// Writes the four standard (raw) IDX files of `d` into `dir`.
inline void write_idx_dataset(const Dataset& d, const std::string& dir) {
    std::filesystem::create_directories(dir);
    auto write_split = [&](const Split& s, const std::string& prefix) {
        std::ofstream img(dir + "/" + prefix + "-images-idx3-ubyte", std::ios::binary);
        put_be32(img, 0x803);
        put_be32(img, uint32_t(s.images.n_items));
        put_be32(img, uint32_t(s.images.n_rows));
        put_be32(img, uint32_t(s.images.n_cols));
        img.write(reinterpret_cast<const char*>(s.images.pixels.data()),
                  std::streamsize(s.images.pixels.size()));
        std::ofstream lab(dir + "/" + prefix + "-labels-idx1-ubyte", std::ios::binary);
        put_be32(lab, 0x801);
        put_be32(lab, uint32_t(s.labels.n_items));
        lab.write(reinterpret_cast<const char*>(s.labels.labels.data()),
                  std::streamsize(s.labels.labels.size()));
    };
    write_split(d.train, "train");
    write_split(d.test, "t10k");
}

}  // namespace mlp::test
