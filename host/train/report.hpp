// Text and JSON forms of training results. The epoch line has one stable
// format so scripts can parse it:
//   epoch 3/10 loss 0.081234 train_acc 97.52% test_loss 0.090100 test_acc 97.21% time 2.114s samples/s 28382
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/train/train_loop.hpp"

namespace mlp {

std::string format_epoch_line(const EpochRecord& r, int64_t n_epochs);
nlohmann::json epoch_json(const EpochRecord& r);

// A progress bar on stderr, drawn only when stderr is a terminal.
class ProgressBar {
public:
    explicit ProgressBar(bool enabled);
    void update(int64_t done, int64_t total);
    void clear();

private:
    bool enabled_;
    int last_permille_ = -1;
};

}  // namespace mlp
