// Finding and loading the four standard IDX files of a data set, with cross-file checks that a
// single-file reader cannot make (counts per split, image sizes, label range).
#include "host/data/dataset.hpp"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "host/base/error.hpp"

namespace mlp {

namespace fs = std::filesystem;

namespace {

// One of the four files: its canonical name and the older dotted spelling some mirrors use.
struct FileRole {
    const char* name;
    const char* alt_name;
};

constexpr FileRole k_train_images{"train-images-idx3-ubyte", "train-images.idx3-ubyte"};
constexpr FileRole k_train_labels{"train-labels-idx1-ubyte", "train-labels.idx1-ubyte"};
constexpr FileRole k_test_images{"t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"};
constexpr FileRole k_test_labels{"t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"};
constexpr FileRole k_roles[] = {k_train_images, k_train_labels, k_test_images, k_test_labels};

constexpr const char* k_system_datasets_dir = "/usr/share/datasets";

}  // namespace

static bool is_file(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

// Path of the first accepted spelling present in `dir`, or "" when none is.
static std::string locate(const std::string& dir, const FileRole& role) {
    for (const char* base : {role.name, role.alt_name}) {
        for (const char* ext : {"", ".gz"}) {
            fs::path p = fs::path(dir) / (std::string(base) + ext);
            if (is_file(p)) return p.string();
        }
    }
    return "";
}

static std::string require(const std::string& dir, const FileRole& role) {
    std::string path = locate(dir, role);
    if (path.empty()) {
        throw DataError(dir, "missing " + std::string(role.name) + "[.gz] (or " + role.alt_name +
                                 "[.gz]) in this folder");
    }
    return path;
}

static Split load_split(const std::string& images_path, const std::string& labels_path,
                        const char* split_name, uint64_t limit_bytes) {
    Split s;
    s.images = read_idx_images(images_path, limit_bytes);
    s.labels = read_idx_labels(labels_path, limit_bytes);
    if (s.images.n_items != s.labels.n_items) {
        throw DataError(labels_path, std::string(split_name) + " split: " +
                                         std::to_string(s.labels.n_items) + " labels, but " +
                                         images_path + " holds " +
                                         std::to_string(s.images.n_items) + " images");
    }
    return s;
}

static void check_same_image_size(const Dataset& d, const std::string& train_path,
                                  const std::string& test_path) {
    const IdxImages& a = d.train.images;
    const IdxImages& b = d.test.images;
    if (a.n_rows != b.n_rows || a.n_cols != b.n_cols) {
        throw DataError(test_path, "test images are " + std::to_string(b.n_rows) + "x" +
                                       std::to_string(b.n_cols) + " but training images in " +
                                       train_path + " are " + std::to_string(a.n_rows) + "x" +
                                       std::to_string(a.n_cols));
    }
}

// The model's output width comes from the training labels, so a larger test label would index
// past the logits; it is a data error, not something to clamp.
static void check_test_labels(const Dataset& d, const std::string& test_labels_path) {
    const std::vector<uint8_t>& labels = d.test.labels.labels;
    for (size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] >= d.n_classes) {
            throw DataError(test_labels_path,
                            "label out of range: item " + std::to_string(i) + " has label " +
                                std::to_string(labels[i]) + ", but the training labels give " +
                                std::to_string(d.n_classes) + " classes (0.." +
                                std::to_string(d.n_classes - 1) + ")");
        }
    }
}

Dataset load_dataset(const std::string& dir, const std::string& name, uint64_t limit_bytes) {
    // Resolve all four names first so that a missing file is reported before any slow read.
    std::string train_images = require(dir, k_train_images);
    std::string train_labels = require(dir, k_train_labels);
    std::string test_images = require(dir, k_test_images);
    std::string test_labels = require(dir, k_test_labels);

    Dataset d;
    d.name = name;
    d.dir = dir;
    d.train = load_split(train_images, train_labels, "train", limit_bytes);
    d.test = load_split(test_images, test_labels, "test", limit_bytes);
    check_same_image_size(d, train_images, test_images);
    const std::vector<uint8_t>& tl = d.train.labels.labels;
    d.n_classes = int(*std::max_element(tl.begin(), tl.end())) + 1;
    check_test_labels(d, test_labels);
    return d;
}

bool has_dataset_files(const std::string& dir) {
    for (const FileRole& role : k_roles) {
        if (locate(dir, role).empty()) return false;
    }
    return true;
}

const std::vector<std::string>& known_datasets() {
    static const std::vector<std::string> names = {"mnist", "fashion-mnist"};
    return names;
}

std::string find_dataset_dir(const std::string& name, const std::string& project_data_dir) {
    const std::vector<std::string>& known = known_datasets();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
        std::string list;
        for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
        throw Error("unknown data set '" + name + "'; known data sets: " + list);
    }
    for (const std::string& root : {project_data_dir, std::string(k_system_datasets_dir)}) {
        if (root.empty()) continue;
        std::string dir = root + "/" + name;
        if (has_dataset_files(dir)) return dir;
    }
    return "";
}

}  // namespace mlp
