// Ensembles of saved models: the members' class probabilities averaged, for
// `mlptrain eval --model a --model b ...` and `predict`. Members may differ in
// their hidden layers but must take the same inputs and give the same classes.
#pragma once

#include <cstdint>
#include <vector>

#include "host/model/predict.hpp"

namespace mlp {

// Throws DataError naming the first member whose input count, class count or input scaling
// differs from the first member's.
void check_ensemble(const std::vector<Predictor>& members);

// The mean of the members' probabilities for one input (pixel values 0..255).
std::vector<double> ensemble_probabilities(const std::vector<Predictor>& members,
                                           const uint8_t* pixels);
std::vector<double> ensemble_probabilities(const std::vector<Predictor>& members,
                                           const float* pixels);

struct EnsembleScore {
    double accuracy = 0.0;  // fraction in [0, 1]
    double loss = 0.0;      // mean cross-entropy
};

struct EnsembleEvaluation {
    std::vector<EnsembleScore> members;  // each member alone
    EnsembleScore ensemble;              // the averaged probabilities
    std::vector<uint8_t> predictions;    // the ensemble's class per sample
};

// Scores the members and their average on `n` samples of `n_features` pixels each, with
// labels. Predictions take the lowest class among equal probabilities, as an argmax does.
EnsembleEvaluation evaluate_ensemble(const std::vector<Predictor>& members, const uint8_t* pixels,
                                     const uint8_t* labels, int64_t n);

}  // namespace mlp
