// A training/test pair of IDX image and label files, and where to find it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/config/train_config.hpp"
#include "host/data/idx.hpp"

namespace mlp {

// One split, as bytes (IDX images, scaled by 1/255 as they are gathered) or as float32
// features read as they are (make_float_split). A float split keeps its shape in `images`
// (n_items, n_rows x n_cols = the feature count: 1 x n for tabular data) with no pixels.
struct Split {
    IdxImages images;
    IdxLabels labels;
    std::vector<float> features;  // float32 data: n_items * n_features, sample-contiguous
    // Or the caller's float32 data, borrowed (make_float_split_view): the caller keeps it alive
    // until the trainers made from this split exist (they hold their own copy).
    const float* borrowed_features = nullptr;
    int64_t size() const { return images.n_items; }
    bool has_float_features() const { return float_data() != nullptr; }
    const float* float_data() const {
        return borrowed_features ? borrowed_features : features.empty() ? nullptr : features.data();
    }
    int64_t n_float_values() const {
        return has_float_features() ? size() * images.n_features() : 0;
    }
};

// A float32 split of n samples of n_rows * n_cols features each (sample-contiguous, any
// finite values, used unscaled) and their labels (< 256). Throws Error for sizes that do not
// agree or are not positive.
Split make_float_split(std::vector<float> features, std::vector<uint8_t> labels, int64_t n,
                       int n_rows, int n_cols);
// The same over n * n_rows * n_cols values at `features`, borrowed, not copied (the Python
// binding's NumPy arrays: one copy less of a large data set on its way to the device).
Split make_float_split_view(const float* features, std::vector<uint8_t> labels, int64_t n,
                            int n_rows, int n_cols);

struct Dataset {
    std::string name;    // "mnist", "fashion-mnist", or the folder name for --data
    std::string dir;     // folder the files were read from
    int n_classes = 0;   // see LoadOptions::n_classes
    Split train;         // test_only: no samples, the test images' size
    Split test;
    int64_t n_features() const { return train.images.n_features(); }
};

// What load_dataset reads and how it counts the classes.
struct LoadOptions {
    uint64_t limit_bytes = k_default_idx_limit_bytes;
    // 0: the largest training label + 1, and each class below it must have a training sample,
    // since one stray label would otherwise widen the model silently. Else the class count:
    // every label must lie below it, and classes no sample uses are allowed.
    int64_t n_classes = 0;
    std::string classes_from = "--classes";  // what set n_classes, for the messages
    bool test_only = false;  // read the test split alone (the train split stays empty)
};

// Reads the four standard files from `dir`:
//   train-images-idx3-ubyte[.gz] (or train-images.idx3-ubyte[.gz]), train-labels-idx1-ubyte[.gz],
//   t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]  (same two spellings).
// Checks: each file present (message names the folder and the missing file), image and label
// counts agree per split, train and test image sizes agree, the class range above (a bad label
// names its file, the first sample index with it and its value), test labels < n_classes.
Dataset load_dataset(const std::string& dir, const std::string& name, const LoadOptions& options);
Dataset load_dataset(const std::string& dir, const std::string& name,
                     uint64_t limit_bytes = k_default_idx_limit_bytes);

// True when `dir` holds all four files (the two test files with `test_only`) in one of the
// accepted spellings.
bool has_dataset_files(const std::string& dir, bool test_only = false);

// Folder for a named data set (k_datasets): the first of `project_data_dir/NAME`,
// `/usr/share/datasets/NAME` that holds the files (has_dataset_files).
// Returns "" when none does (the caller may then run data/fetch).
// Throws UsageError naming --dataset for an unknown name, listing the known ones.
std::string find_dataset_dir(const std::string& name, const std::string& project_data_dir,
                             bool test_only = false);

// `path` when it names a file, else `path`.gz when that does, as the folder lookup accepts
// either; else `path` unchanged, for the reader's error to name.
std::string with_gz_fallback(const std::string& path);

// The names of k_datasets.
std::vector<std::string> known_datasets();

}  // namespace mlp
