#include "host/cli/eval_command.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "host/base/error.hpp"
#include "host/cli/training_flags.hpp"
#include "host/config/checks.hpp"
#include "host/data/data_source.hpp"
#include "host/device/device.hpp"
#include "host/formats/safetensors.hpp"

namespace mlp {

CLI::App* add_eval_command(CLI::App& app, EvalConfig& config) {
    CLI::App* cmd = app.add_subcommand("eval", "evaluate a saved model on a test set");
    cmd->add_option("--model", config.model_path, "model file (safetensors)")->required();
    add_data_options(cmd, config.data);
    add_device_option(cmd, config.device);
    cmd->add_option("--test-batch-size", config.test_batch_size, "evaluation batch size")
        ->capture_default_str();
    cmd->add_option("--threads", config.threads,
                    "CPU threads (0: one below batch 1024, else all cores)");
    cmd->add_flag("--json", config.json, "print the results as JSON");
    cmd->parse_complete_callback([&config] {
        check_data_config(config.data);
        check_device_flag(config.device);
        check_int("--test-batch-size", config.test_batch_size, 1, k_max_batch_size);
        check_int("--threads", config.threads, 0);
    });
    return cmd;
}

int run_eval(const EvalConfig& config, std::ostream& out) {
    const ModelFile model = load_model(config.model_path, config.data.max_input_bytes());
    const int64_t n_classes = model.shape.n_classes();
    if (config.data.classes > n_classes) {
        throw UsageError("--classes", std::to_string(config.data.classes) + " is more than the " +
                                          std::to_string(n_classes) + " outputs of the model " +
                                          config.model_path);
    }
    const DeviceChoice device = choose_device(config.device);
    const Dataset data = open_test_split(config.data, n_classes);
    TrainerOptions options;
    options.batch_size = 1;
    options.eval_batch_size = config.test_batch_size;
    options.cpu_threads = config.threads;
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
        nlohmann::json j = {{"model", config.model_path},       {"dataset", data.name},
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
