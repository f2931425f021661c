#include "host/train_loop.hpp"

#include <chrono>
#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "host/atomic_file.hpp"
#include "host/error.hpp"
#include "host/report.hpp"
#include "host/rng.hpp"
#include "host/safetensors.hpp"

namespace mlp {

static std::string join(const std::vector<int64_t>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}

static std::map<std::string, std::string> model_metadata(const TrainConfig& config,
                                                          const std::string& dataset_name,
                                                          int64_t epochs_done,
                                                          int64_t n_classes) {
    return {{"format", "mlptrain"},
            {"input_scale", "1/255"},
            {"input_offset", "0"},
            {"n_classes", std::to_string(n_classes)},
            {"dataset", dataset_name},
            {"epoch", std::to_string(epochs_done)},
            {"seed", std::to_string(config.seed)},
            {"batch_size", std::to_string(config.batch_size)},
            {"lr", std::to_string(config.lr)},
            {"optimizer", "sgd"},
            {"hidden", join(config.hidden)}};
}

std::vector<EpochRecord> run_training(Trainer& trainer, const TrainConfig& config,
                                      const std::string& dataset_name, std::ostream& out) {
    using clock = std::chrono::steady_clock;
    std::vector<EpochRecord> records;
    std::string metrics;
    ProgressBar progress(true);
    const int64_t n_train = trainer.n_train();

    for (int64_t e = 0; e < config.epochs; ++e) {
        const std::vector<int32_t> perm = epoch_permutation(n_train, config.seed, e);
        StepCallback on_step = [&](int64_t done, int64_t total) {
            progress.update(done, total);
            if (config.log_interval > 0 && done % config.log_interval == 0) {
                progress.clear();
                const int64_t n_seen = std::min(n_train, done * config.batch_size);
                out << "epoch " << e + 1 << " step " << done << "/" << total << " ["
                    << n_seen << "/" << n_train << "] loss " << trainer.running_loss(n_seen)
                    << std::endl;
            }
        };

        EpochRecord r;
        r.epoch = e + 1;
        r.lr = config.lr;
        const auto t0 = clock::now();
        r.train = trainer.train_epoch(perm, r.lr, on_step);
        r.seconds = std::chrono::duration<double>(clock::now() - t0).count();
        progress.clear();
        r.samples_per_s = double(n_train) / r.seconds;
        if (!std::isfinite(r.train.loss)) {
            throw Error("training loss became " + std::to_string(r.train.loss) + " in epoch " +
                        std::to_string(r.epoch) + "; stopped (try a smaller --lr)");
        }
        r.test = trainer.evaluate();
        out << format_epoch_line(r, config.epochs) << std::endl;
        records.push_back(r);

        if (!config.metrics_path.empty()) {
            metrics += epoch_json(r).dump() + "\n";
            write_file_atomic(config.metrics_path, metrics);
        }
    }
    if (!config.save_model_path.empty()) {
        save_model(config.save_model_path, trainer.shape(), trainer.params(),
                   model_metadata(config, dataset_name, config.epochs,
                                  trainer.shape().n_classes()));
        out << "saved model to " << config.save_model_path << std::endl;
    }
    return records;
}

}  // namespace mlp
