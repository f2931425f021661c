// Finding and loading the four standard IDX files of a data set, with cross-file checks that a
// single-file reader cannot make (counts per split, image sizes, label range).
#include "host/data/dataset.hpp"

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <system_error>
#include <utility>

#include "host/base/error.hpp"
#include "host/config/names.hpp"

namespace mlp {

namespace fs = std::filesystem;

namespace {

// One of the four files: its canonical name and the older dotted spelling some mirrors use.
struct FileRole {
    const char* name;
    const char* alt_name;
    bool test;  // part of the test split, all that eval reads
};

constexpr FileRole k_train_images{"train-images-idx3-ubyte", "train-images.idx3-ubyte", false};
constexpr FileRole k_train_labels{"train-labels-idx1-ubyte", "train-labels.idx1-ubyte", false};
constexpr FileRole k_test_images{"t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte", true};
constexpr FileRole k_test_labels{"t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte", true};
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

// Labels at or above the class count would index past the logits; a data error, not something
// to clamp.
static void check_labels_below(const std::vector<uint8_t>& labels, const std::string& path,
                               int64_t n_classes, const std::string& classes_from) {
    for (size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] >= n_classes) {
            throw DataError(path, "label out of range: item " + std::to_string(i) + " has label " +
                                      std::to_string(labels[i]) + ", but " + classes_from + " " +
                                      std::to_string(n_classes) + " classes (0.." +
                                      std::to_string(n_classes - 1) + ")");
        }
    }
}

// Largest label + 1, refusing a range with classes no sample uses: one stray label (200 among
// digits) would otherwise give a model with 201 outputs and train without complaint.
static int classes_from_labels(const std::vector<uint8_t>& labels, const std::string& path) {
    if (labels.empty()) throw DataError(path, "holds no labels");
    int64_t first[k_max_classes];
    std::fill(std::begin(first), std::end(first), -1);
    for (size_t i = labels.size(); i-- > 0;) first[labels[i]] = int64_t(i);
    const int n_classes = int(*std::max_element(labels.begin(), labels.end())) + 1;
    for (int c = 0; c < n_classes; ++c) {
        if (first[c] >= 0) continue;
        int next = c;
        while (first[next] < 0) ++next;
        const std::string gap =
            next == c + 1 ? "label " + std::to_string(c)
                          : "a label in " + std::to_string(c) + ".." + std::to_string(next - 1);
        throw DataError(path, "item " + std::to_string(first[next]) + " has label " +
                                  std::to_string(next) + ", but no sample has " + gap +
                                  ": the classes 0.." + std::to_string(n_classes - 1) +
                                  " would include empty ones (if the data really has unused "
                                  "classes, give --classes " +
                                  std::to_string(n_classes) + ")");
    }
    return n_classes;
}

Dataset load_dataset(const std::string& dir, const std::string& name, const LoadOptions& options) {
    // Resolve the names first so that a missing file is reported before any slow read.
    const bool train = !options.test_only;
    std::string train_images = train ? require(dir, k_train_images) : "";
    std::string train_labels = train ? require(dir, k_train_labels) : "";
    std::string test_images = require(dir, k_test_images);
    std::string test_labels = require(dir, k_test_labels);

    Dataset d;
    d.name = name;
    d.dir = dir;
    d.test = load_split(test_images, test_labels, "test", options.limit_bytes);
    if (train) {
        d.train = load_split(train_images, train_labels, "train", options.limit_bytes);
        check_same_image_size(d, train_images, test_images);
    } else {
        // The model's input size comes from the train split's image size.
        d.train.images.n_rows = d.test.images.n_rows;
        d.train.images.n_cols = d.test.images.n_cols;
    }
    const std::vector<uint8_t>& class_labels = train ? d.train.labels.labels : d.test.labels.labels;
    const std::string& class_path = train ? train_labels : test_labels;
    if (options.n_classes > 0) {
        d.n_classes = int(options.n_classes);
        const std::string gives = options.classes_from + " gives";
        if (train) check_labels_below(d.train.labels.labels, train_labels, d.n_classes, gives);
        check_labels_below(d.test.labels.labels, test_labels, d.n_classes, gives);
    } else if (train) {
        d.n_classes = classes_from_labels(class_labels, class_path);
        check_labels_below(d.test.labels.labels, test_labels, d.n_classes,
                           "the training labels give");
    } else {
        // The test split alone says nothing about classes it lacks; the caller's count decides.
        d.n_classes = d.test.size()
                          ? int(*std::max_element(class_labels.begin(), class_labels.end())) + 1
                          : 0;
    }
    return d;
}

Dataset load_dataset(const std::string& dir, const std::string& name, uint64_t limit_bytes) {
    LoadOptions options;
    options.limit_bytes = limit_bytes;
    return load_dataset(dir, name, options);
}

bool has_dataset_files(const std::string& dir, bool test_only) {
    for (const FileRole& role : k_roles) {
        if (test_only && !role.test) continue;
        if (locate(dir, role).empty()) return false;
    }
    return true;
}

std::string with_gz_fallback(const std::string& path) {
    if (!is_file(path) && is_file(path + ".gz")) return path + ".gz";
    return path;
}

std::vector<std::string> known_datasets() {
    return names_of(k_datasets);
}

std::string find_dataset_dir(const std::string& name, const std::string& project_data_dir,
                             bool test_only) {
    parse_name(k_datasets, name, "--dataset", "data set");
    for (const std::string& root : {project_data_dir, std::string(k_system_datasets_dir)}) {
        if (root.empty()) continue;
        std::string dir = root + "/" + name;
        if (has_dataset_files(dir, test_only)) return dir;
    }
    return "";
}

// The shape checks of both float splits; `n_values` is what the caller holds (-1: unknown).
static Split float_split_shape(std::vector<uint8_t> labels, int64_t n, int n_rows, int n_cols,
                               int64_t n_values) {
    if (n <= 0 || n_rows <= 0 || n_cols <= 0) {
        throw Error("a float split needs samples and features (got " + std::to_string(n) +
                    " samples of " + std::to_string(n_rows) + " x " + std::to_string(n_cols) +
                    ")");
    }
    const int64_t n_features = int64_t(n_rows) * n_cols;
    if ((n_values >= 0 && n_values != n * n_features) || int64_t(labels.size()) != n) {
        throw Error("a float split of " + std::to_string(n) + " samples of " +
                    std::to_string(n_features) + " features needs " +
                    std::to_string(n * n_features) + " values and " + std::to_string(n) +
                    " labels (got " + std::to_string(n_values) + " and " +
                    std::to_string(labels.size()) + ")");
    }
    Split split;
    split.images.n_items = n;
    split.images.n_rows = n_rows;
    split.images.n_cols = n_cols;
    split.labels.n_items = n;
    split.labels.labels = std::move(labels);
    return split;
}

Split make_float_split(std::vector<float> features, std::vector<uint8_t> labels, int64_t n,
                       int n_rows, int n_cols) {
    Split split =
        float_split_shape(std::move(labels), n, n_rows, n_cols, int64_t(features.size()));
    split.features = std::move(features);
    return split;
}

Split make_float_split_view(const float* features, std::vector<uint8_t> labels, int64_t n,
                            int n_rows, int n_cols) {
    if (!features) throw Error("a float split view needs data");
    Split split = float_split_shape(std::move(labels), n, n_rows, n_cols, -1);
    split.borrowed_features = features;
    return split;
}

}  // namespace mlp
