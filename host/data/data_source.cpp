#include "host/data/data_source.hpp"

#include <cstdlib>
#include <filesystem>

#include "host/base/error.hpp"

namespace mlp {

namespace fs = std::filesystem;

std::string project_data_dir() {
    if (const char* env = std::getenv("MLPTRAIN_DATA_DIR"); env && *env) return env;
    return std::string(MLPTRAIN_SOURCE_DIR) + "/data";
}

static std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// The data set is fetched by the project's script rather than by the binary,
// so downloads, mirrors and checksums live in one place (data/fetch).
static std::string fetch_dataset(const std::string& name, const std::string& data_dir) {
    const std::string script = std::string(MLPTRAIN_SOURCE_DIR) + "/data/fetch";
    if (!fs::exists(script)) return "";
    const std::string dest = data_dir + "/" + name;
    const std::string cmd =
        shell_quote(script) + " " + shell_quote(name) + " --dest " + shell_quote(dest) + " >&2";
    if (std::system(cmd.c_str()) != 0) return "";
    return has_dataset_files(dest) ? dest : "";
}

// Keeps the first n samples (quick runs, sanitizer runs); n = 0 keeps all.
static void keep_first(Split& split, int64_t n) {
    if (n <= 0 || n >= split.size()) return;
    split.images.n_items = n;
    split.images.pixels.resize(size_t(n * split.images.n_features()));
    split.labels.n_items = n;
    split.labels.labels.resize(size_t(n));
}

static Dataset subset(Dataset data, const DataConfig& config) {
    keep_first(data.train, config.train_samples);
    keep_first(data.test, config.test_samples);
    return data;
}

static Dataset open_with(const DataConfig& config, const LoadOptions& options, std::string* where) {
    if (!config.data_dir.empty()) {
        if (!fs::is_directory(config.data_dir)) {
            throw Error("--data " + config.data_dir + ": not a folder");
        }
        const std::string name = fs::path(config.data_dir).lexically_normal().filename();
        if (where) *where = config.data_dir;
        return subset(load_dataset(config.data_dir, name.empty() ? "data" : name, options), config);
    }
    const std::string data_dir = project_data_dir();
    std::string dir = find_dataset_dir(config.dataset, data_dir, options.test_only);
    if (dir.empty() && config.fetch) dir = fetch_dataset(config.dataset, data_dir);
    if (dir.empty()) {
        throw Error("--dataset " + config.dataset + ": not found in " + data_dir + "/" +
                    config.dataset + " or /usr/share/datasets/" + config.dataset +
                    (config.fetch ? ", and data/fetch could not get it" : "") +
                    "; run data/fetch " + config.dataset +
                    " [--mirror DIR], or pass --data DIR");
    }
    if (where) *where = dir;
    return subset(load_dataset(dir, config.dataset, options), config);
}

Dataset open_dataset(const DataConfig& config, std::string* where) {
    LoadOptions options;
    options.limit_bytes = config.max_input_bytes();
    options.n_classes = config.classes;
    return open_with(config, options, where);
}

Dataset open_test_split(const DataConfig& config, int64_t model_classes, std::string* where) {
    LoadOptions options;
    options.limit_bytes = config.max_input_bytes();
    options.n_classes = config.classes > 0 ? config.classes : model_classes;
    options.classes_from = config.classes > 0 ? "--classes" : "the model";
    options.test_only = true;
    return open_with(config, options, where);
}

}  // namespace mlp
