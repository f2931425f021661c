// A training/test pair of IDX image and label files, and where to find it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/data/idx.hpp"

namespace mlp {

struct Split {
    IdxImages images;
    IdxLabels labels;
    int64_t size() const { return images.n_items; }
};

struct Dataset {
    std::string name;    // "mnist", "fashion-mnist", or the folder name for --data
    std::string dir;     // folder the files were read from
    int n_classes = 0;   // max training label + 1
    Split train;
    Split test;
    int64_t n_features() const { return train.images.n_features(); }
};

// Reads the four standard files from `dir`:
//   train-images-idx3-ubyte[.gz] (or train-images.idx3-ubyte[.gz]), train-labels-idx1-ubyte[.gz],
//   t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]  (same two spellings).
// Checks: each file present (message names the folder and the missing file), image and label
// counts agree per split, train and test image sizes agree, test labels < n_classes.
Dataset load_dataset(const std::string& dir, const std::string& name,
                     uint64_t limit_bytes = k_default_idx_limit_bytes);

// True when `dir` holds all four files in one of the accepted spellings.
bool has_dataset_files(const std::string& dir);

// Folder for a named data set (`mnist` or `fashion-mnist`): the first of
// `project_data_dir/NAME`, `/usr/share/datasets/NAME` that holds the four files.
// Returns "" when none does (the caller may then run data/fetch).
// Throws Error for an unknown name, listing the known ones.
std::string find_dataset_dir(const std::string& name, const std::string& project_data_dir);

// Known data set names.
const std::vector<std::string>& known_datasets();

}  // namespace mlp
