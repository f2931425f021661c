#include "host/train/report.hpp"

#include <unistd.h>

#include <cstdio>

namespace mlp {

std::string format_epoch_line(const EpochRecord& r, int64_t n_epochs) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "epoch %lld/%lld loss %.6f train_acc %.2f%% test_loss %.6f test_acc %.2f%% "
                  "time %.3fs samples/s %.0f",
                  (long long)r.epoch, (long long)n_epochs, r.train.loss, 100.0 * r.train.accuracy,
                  r.test.loss, 100.0 * r.test.accuracy, r.seconds, r.samples_per_s);
    return buf;
}

nlohmann::json epoch_json(const EpochRecord& r) {
    return {{"epoch", r.epoch},
            {"lr", r.lr},
            {"lr_last", r.lr_last},
            {"grad_norm", r.train.grad_norm},
            {"loss", r.train.loss},
            {"train_accuracy", r.train.accuracy},
            {"test_loss", r.test.loss},
            {"test_accuracy", r.test.accuracy},
            {"epoch_time_s", r.seconds},
            {"samples_per_s", r.samples_per_s}};
}

ProgressBar::ProgressBar(bool enabled) : enabled_(enabled && isatty(STDERR_FILENO)) {}

void ProgressBar::update(int64_t done, int64_t total) {
    if (!enabled_ || total <= 0) return;
    const int permille = int(1000 * done / total);
    if (permille == last_permille_) return;  // redraw at most 1000 times a pass
    last_permille_ = permille;
    constexpr int k_width = 40;
    const int filled = permille * k_width / 1000;
    std::fprintf(stderr, "\r[%.*s%*s] %lld/%lld", filled, "########################################",
                 k_width - filled, "", (long long)done, (long long)total);
    std::fflush(stderr);
}

void ProgressBar::clear() {
    if (!enabled_ || last_permille_ < 0) return;
    std::fprintf(stderr, "\r%*s\r", 70, "");
    std::fflush(stderr);
    last_permille_ = -1;
}

}  // namespace mlp
