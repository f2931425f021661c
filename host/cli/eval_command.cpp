#include "host/cli/commands.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <utility>

#include "host/base/error.hpp"
#include "host/cli/training_flags.hpp"
#include "host/config/checks.hpp"
#include "host/data/data_source.hpp"
#include "host/device/device.hpp"
#include "host/formats/run_metadata.hpp"
#include "host/formats/safetensors.hpp"
#include "host/model/ensemble.hpp"

namespace mlp {

CLI::App* add_eval_command(CLI::App& app, EvalConfig& config) {
    CLI::App* cmd = app.add_subcommand("eval", "evaluate a saved model on a test set");
    cmd->add_option("--model", config.model_paths,
                    "model file (safetensors); repeated: an ensemble (mean probabilities)")
        ->required()
        ->allow_extra_args(false);
    add_data_options(cmd, config.data);
    add_device_option(cmd, config.device);
    cmd->add_option("--test-batch-size", config.test_batch_size, "evaluation batch size")
        ->capture_default_str();
    cmd->add_option("--threads", config.threads,
                    "CPU threads (0: one per core; results do not depend on it)");
    cmd->add_flag("--json", config.json, "print the results as JSON");
    cmd->parse_complete_callback([&config] {
        check_data_config(config.data);
        check_device_flag(config.device);
        check_int("--test-batch-size", config.test_batch_size, 1, k_max_batch_size);
        check_int("--threads", config.threads, 0);
    });
    return cmd;
}

// The members are evaluated on the host in double precision (the forward pass of `predict`),
// so the ensemble's figures do not depend on the device.
static int run_ensemble_eval(const std::vector<std::string>& model_paths,
                             const DataConfig& data_config, bool json, std::ostream& out) {
    std::vector<Predictor> members;
    for (const std::string& path : model_paths) {
        ModelFile model = load_model(path, data_config.max_input_bytes());
        check_input_normalisation(model.metadata, path);
        members.emplace_back(std::move(model), path);
    }
    check_ensemble(members);
    const Dataset data = open_test_split(data_config, members.front().shape().n_classes());
    const Split& test = data.test;
    if (test.images.n_features() != members.front().shape().n_inputs()) {
        throw DataError(model_paths.front(),
                        "takes " + std::to_string(members.front().shape().n_inputs()) +
                            " inputs, but the test images have " +
                            std::to_string(test.images.n_features()) + " values");
    }
    if (data.n_classes > members.front().shape().n_classes()) {
        throw DataError(model_paths.front(),
                        "has " + std::to_string(members.front().shape().n_classes()) +
                            " outputs but the data has " + std::to_string(data.n_classes) +
                            " classes");
    }
    const EnsembleEvaluation r = evaluate_ensemble(members, test.images.pixels.data(),
                                                   test.labels.labels.data(), test.size());
    const int64_t n_classes = members.front().shape().n_classes();
    std::vector<std::vector<int64_t>> confusion(size_t(n_classes),
                                                std::vector<int64_t>(size_t(n_classes), 0));
    for (size_t i = 0; i < r.predictions.size(); ++i) {
        confusion[test.labels.labels[i]][r.predictions[i]] += 1;
    }
    if (json) {
        nlohmann::json list = nlohmann::json::array();
        for (size_t k = 0; k < members.size(); ++k) {
            list.push_back({{"model", model_paths[k]},
                            {"test_accuracy", r.members[k].accuracy},
                            {"test_loss", r.members[k].loss}});
        }
        nlohmann::json j = {{"models", model_paths},        {"dataset", data.name},
                            {"n_samples", test.size()},     {"members", list},
                            {"test_loss", r.ensemble.loss}, {"test_accuracy", r.ensemble.accuracy},
                            {"confusion_matrix", confusion}};
        out << j.dump(2) << std::endl;
        return 0;
    }
    char line[256];
    out << "ensemble of " << members.size() << " models (mean of their probabilities, on the "
        << "host), " << data.name << " test set, " << test.size() << " samples:\n";
    std::snprintf(line, sizeof line, "  %-8s  %8s  %10s  %s", "member", "test_acc", "test_loss",
                  "model");
    out << line << "\n";
    for (size_t k = 0; k < members.size(); ++k) {
        std::snprintf(line, sizeof line, "  %-8zu  %7.2f%%  %10.6f  %s", k + 1,
                      100.0 * r.members[k].accuracy, r.members[k].loss, model_paths[k].c_str());
        out << line << "\n";
    }
    std::snprintf(line, sizeof line, "  %-8s  %7.2f%%  %10.6f", "ensemble",
                  100.0 * r.ensemble.accuracy, r.ensemble.loss);
    out << line << "\n";
    std::snprintf(line, sizeof line, "test_loss %.6f test_acc %.2f%% (%lld samples, ensemble)",
                  r.ensemble.loss, 100.0 * r.ensemble.accuracy, (long long)test.size());
    out << line << std::endl;
    return 0;
}

int run_eval(const EvalConfig& config, std::ostream& out) {
    if (config.model_paths.size() > 1) {
        return run_ensemble_eval(config.model_paths, config.data, config.json, out);
    }
    const std::string& model_path = config.model_paths.front();
    const ModelFile model = load_model(model_path, config.data.max_input_bytes());
    check_input_normalisation(model.metadata, model_path);
    const int64_t n_classes = model.shape.n_classes();
    if (config.data.classes > n_classes) {
        throw UsageError("--classes", std::to_string(config.data.classes) + " is more than the " +
                                          std::to_string(n_classes) + " outputs of the model " +
                                          model_path);
    }
    const DeviceChoice device = choose_device(config.device);
    const Dataset data = open_test_split(config.data, n_classes);
    TrainerOptions options;
    options.batch_size = 1;
    options.eval_batch_size = config.test_batch_size;
    options.cpu_threads = config.threads;
    options.activation = activation_of(model.metadata, model_path);
    auto trainer = make_trainer(device, model.shape, data, options);
    trainer->set_params(model.params);
    const EpochResult result = trainer->evaluate();
    const std::vector<uint8_t> pred = trainer->test_predictions();

    std::vector<std::vector<int64_t>> confusion(size_t(n_classes),
                                                std::vector<int64_t>(size_t(n_classes), 0));
    for (size_t i = 0; i < pred.size(); ++i) {
        confusion[data.test.labels.labels[i]][pred[i]] += 1;
    }
    std::vector<double> per_class(size_t(n_classes), 0.0);
    for (int64_t c = 0; c < n_classes; ++c) {
        int64_t total = 0;
        for (int64_t v : confusion[size_t(c)]) total += v;
        per_class[size_t(c)] = total ? double(confusion[size_t(c)][size_t(c)]) / double(total) : 0;
    }

    if (config.json) {
        nlohmann::json j = {{"model", model_path},       {"dataset", data.name},
                            {"n_samples", result.n_samples},    {"test_loss", result.loss},
                            {"test_accuracy", result.accuracy}, {"per_class_accuracy", per_class},
                            {"confusion_matrix", confusion}};
        out << j.dump(2) << std::endl;
        return 0;
    }
    char line[160];
    std::snprintf(line, sizeof line, "test_loss %.6f test_acc %.2f%% (%lld samples)", result.loss,
                  100.0 * result.accuracy, (long long)result.n_samples);
    print_device(out, *trainer, device);
    out << line << "\nper-class accuracy:\n";
    for (int64_t c = 0; c < n_classes; ++c) {
        std::snprintf(line, sizeof line, "  %3lld  %6.2f%%", (long long)c,
                      100.0 * per_class[size_t(c)]);
        out << line << "\n";
    }
    out << "confusion matrix (rows: true class, columns: predicted):\n";
    for (const auto& row : confusion) {
        for (int64_t v : row) {
            std::snprintf(line, sizeof line, "%6lld", (long long)v);
            out << line;
        }
        out << "\n";
    }
    out.flush();
    return 0;
}

}  // namespace mlp
