// `mlptrain predict`: the most probable classes for PNG pictures or for samples of an IDX image
// file, as text or JSON.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace mlp {

struct PredictConfig {
    std::vector<std::string> model_paths;  // several: an ensemble (mean probabilities)
    std::vector<std::string> files;  // PNG pictures
    std::string idx_path;            // --idx: an IDX image file
    int64_t index = -1;              // --index: one sample of it
    bool all = false;                // --all: every sample of it
    int64_t top_k = 3;
    std::string invert = "auto";  // auto | yes | no (pictures only)
    bool json = false;
};

// Adds the subcommand and its options to `app`; `config` must outlive the parse. Inconsistent
// choices (a picture and --idx, --index without --idx, ...) are usage errors of the parse.
CLI::App* add_predict_command(CLI::App& app, PredictConfig& config);

// Text: for each input a header line, then one line per class ("   9  ankle boot   97.12%");
// with --all only the predicted class of each sample, one per line. JSON: an array of
// {"file", "index" (IDX inputs), "inverted" (pictures), "top": [{"class", "name"?,
// "probability"}]}.
int run_predict(const PredictConfig& config, std::ostream& out);

}  // namespace mlp
