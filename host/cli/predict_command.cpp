#include "host/cli/commands.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "host/base/error.hpp"
#include "host/config/checks.hpp"
#include "host/config/train_config.hpp"
#include "host/data/dataset.hpp"
#include "host/data/idx.hpp"
#include "host/data/image.hpp"
#include "host/formats/safetensors.hpp"
#include "host/model/ensemble.hpp"
#include "host/model/predict.hpp"

namespace mlp {

CLI::App* add_predict_command(CLI::App& app, PredictConfig& config) {
    CLI::App* cmd = app.add_subcommand(
        "predict",
        "classify PNG pictures (any size or colours: made grayscale, padded to the model's "
        "aspect, area-averaged or bilinearly resized, and inverted when their background is "
        "light) or samples of an IDX image file");
    cmd->add_option("--model", config.model_paths,
                    "model file (safetensors); repeated: an ensemble (mean probabilities)")
        ->required()
        ->allow_extra_args(false);
    cmd->add_option("files", config.files, "PNG pictures");
    CLI::Option* idx = cmd->add_option("--idx", config.idx_path,
                                       "an IDX image file (e.g. t10k-images-idx3-ubyte[.gz])");
    CLI::Option* index =
        cmd->add_option("--index", config.index, "the sample of the --idx file to classify");
    CLI::Option* all = cmd->add_flag(
        "--all", config.all,
        "classify every sample of the --idx file (text: one predicted class per line)");
    cmd->add_option("--top-k", config.top_k, "how many classes to show")->capture_default_str();
    cmd->add_option("--invert", config.invert,
                    "pictures: make them light-on-dark like the training data: auto (when "
                    "the border is light), yes or no")
        ->check(CLI::IsMember({"auto", "yes", "no"}))
        ->capture_default_str();
    cmd->add_flag("--json", config.json, "print the results as JSON");
    index->needs(idx);
    all->needs(idx);
    index->excludes(all);
    cmd->parse_complete_callback([&config, cmd, index] {
        check_int("--top-k", config.top_k, 1, k_max_batch_size);
        if (index->count() > 0) check_int("--index", config.index, 0);
        if (config.files.empty() && config.idx_path.empty()) {
            throw CLI::ValidationError(cmd->get_name(),
                                       "nothing to classify: give PNG files, or --idx FILE "
                                       "with --index N or --all");
        }
        if (!config.files.empty() && !config.idx_path.empty()) {
            throw CLI::ValidationError(cmd->get_name(), "give PNG files or --idx, not both (" +
                                                            config.files.front() + " and --idx " +
                                                            config.idx_path + ")");
        }
        if (!config.idx_path.empty() && config.index < 0 && !config.all) {
            throw CLI::ValidationError("--idx", "needs --index N or --all");
        }
    });
    return cmd;
}

static nlohmann::json top_json(const std::vector<ClassProbability>& top,
                               const std::string& dataset) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& t : top) {
        nlohmann::json entry = {{"class", t.label}};
        if (const std::string name = class_name(dataset, t.label); !name.empty()) {
            entry["name"] = name;
        }
        entry["probability"] = t.probability;
        list.push_back(entry);
    }
    return list;
}

static void print_top(std::ostream& out, const std::vector<ClassProbability>& top,
                      const std::string& dataset) {
    char line[160];
    for (const auto& t : top) {
        const std::string name = class_name(dataset, t.label);
        if (name.empty()) {
            std::snprintf(line, sizeof line, "  %4lld  %7.2f%%", (long long)t.label,
                          100.0 * t.probability);
        } else {
            std::snprintf(line, sizeof line, "  %4lld  %-12s %7.2f%%", (long long)t.label,
                          name.c_str(), 100.0 * t.probability);
        }
        out << line << "\n";
    }
}

static int predict_idx(const PredictConfig& config, const std::vector<Predictor>& members,
                       std::ostream& out) {
    const Predictor& predictor = members.front();
    const std::string path = with_gz_fallback(config.idx_path);
    const IdxImages images = read_idx_images(path);
    if (images.n_features() != predictor.shape().n_inputs()) {
        throw DataError(path, "images are " + std::to_string(images.n_rows) + "x" +
                                  std::to_string(images.n_cols) + " (" +
                                  std::to_string(images.n_features()) + " values), but the model " +
                                  predictor.path() + " takes " +
                                  std::to_string(predictor.shape().n_inputs()) + " inputs");
    }
    int64_t first = 0, last = images.n_items;
    if (!config.all) {
        if (config.index >= images.n_items) {
            throw DataError(path, "has " + std::to_string(images.n_items) + " images; --index " +
                                      std::to_string(config.index) + " is out of range");
        }
        first = config.index;
        last = first + 1;
    }
    nlohmann::json results = nlohmann::json::array();
    for (int64_t i = first; i < last; ++i) {
        const uint8_t* pixels = &images.pixels[size_t(i * images.n_features())];
        const auto top = top_classes(ensemble_probabilities(members, pixels), config.top_k);
        if (config.json) {
            results.push_back(
                {{"file", path}, {"index", i}, {"top", top_json(top, predictor.dataset())}});
        } else if (config.all) {
            out << top.front().label << "\n";
        } else {
            out << path << " [" << i << "]\n";
            print_top(out, top, predictor.dataset());
        }
    }
    if (config.json) out << results.dump(2) << "\n";
    out.flush();
    return 0;
}

static int predict_pictures(const PredictConfig& config, const std::vector<Predictor>& members,
                            std::ostream& out) {
    const Predictor& predictor = members.front();
    const Polarity polarity = config.invert == "yes"  ? Polarity::Invert
                              : config.invert == "no" ? Polarity::Keep
                                                      : Polarity::Auto;
    const int rows = predictor.image_rows();
    const int cols = predictor.image_cols();
    nlohmann::json results = nlohmann::json::array();
    for (const std::string& file : config.files) {
        PngInfo info;
        const PreparedImage image = prepare_image(read_png(file, &info), rows, cols, polarity);
        const auto top =
            top_classes(ensemble_probabilities(members, image.image.pixels.data()), config.top_k);
        if (config.json) {
            results.push_back({{"file", file},
                               {"inverted", image.inverted},
                               {"top", top_json(top, predictor.dataset())}});
            continue;
        }
        out << file << " (" << info.width << "x" << info.height << " " << info.color
            << (info.sixteen_bit ? " 16-bit" : "") << " -> " << cols << "x" << rows
            << (image.inverted ? ", inverted: light background" : "") << ")\n";
        print_top(out, top, predictor.dataset());
    }
    if (config.json) out << results.dump(2) << "\n";
    out.flush();
    return 0;
}

int run_predict(const PredictConfig& config, std::ostream& out) {
    std::vector<Predictor> members;
    for (const std::string& path : config.model_paths) members.emplace_back(load_model(path), path);
    check_ensemble(members);
    if (!config.idx_path.empty()) return predict_idx(config, members, out);
    return predict_pictures(config, members, out);
}

}  // namespace mlp
