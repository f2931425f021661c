#include "host/cli/ensemble_command.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>

#include "host/base/error.hpp"
#include "host/data/data_source.hpp"
#include "host/formats/safetensors.hpp"
#include "host/model/ensemble.hpp"

namespace mlp {

int run_ensemble_eval(const std::vector<std::string>& model_paths, const DataConfig& data_config,
                      bool json, std::ostream& out) {
    std::vector<Predictor> members;
    for (const std::string& path : model_paths) {
        members.emplace_back(load_model(path, data_config.max_input_bytes()), path);
    }
    check_ensemble(members);
    const Dataset data = open_dataset(data_config);
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

}  // namespace mlp
