#include "host/model/ensemble.hpp"

#include <algorithm>
#include <cmath>
#include <thread>

#include "host/base/error.hpp"

namespace mlp {

void check_ensemble(const std::vector<Predictor>& members) {
    if (members.empty()) throw Error("an ensemble needs at least one model");
    const ModelShape& first = members.front().shape();
    for (const Predictor& m : members) {
        if (m.shape().n_inputs() != first.n_inputs() ||
            m.shape().n_classes() != first.n_classes()) {
            throw DataError(m.path(), "is a " + m.shape().to_string() +
                                          " model; the ensemble's "
                                          "first member, " +
                                          members.front().path() + ", is " + first.to_string() +
                                          ": members must take the same inputs and give the same "
                                          "classes");
        }
    }
}

template <class Pixel>
static std::vector<double> mean_probabilities(const std::vector<Predictor>& members,
                                              const Pixel* pixels) {
    std::vector<double> mean(size_t(members.front().shape().n_classes()), 0.0);
    for (const Predictor& m : members) {
        const std::vector<double> p = m.probabilities(pixels);
        for (size_t c = 0; c < mean.size(); ++c) mean[c] += p[c];
    }
    for (double& v : mean) v /= double(members.size());
    return mean;
}

std::vector<double> ensemble_probabilities(const std::vector<Predictor>& members,
                                           const uint8_t* pixels) {
    return mean_probabilities(members, pixels);
}

std::vector<double> ensemble_probabilities(const std::vector<Predictor>& members,
                                           const float* pixels) {
    return mean_probabilities(members, pixels);
}

static size_t argmax(const std::vector<double>& p) {
    return size_t(std::max_element(p.begin(), p.end()) - p.begin());
}

// log(0) would make one confident mistake infinite; PyTorch's cross-entropy
// on probabilities clamps the same way.
static double xent(double p) {
    return -std::log(std::max(p, 1e-300));
}

EnsembleEvaluation evaluate_ensemble(const std::vector<Predictor>& members, const uint8_t* pixels,
                                     const uint8_t* labels, int64_t n) {
    check_ensemble(members);
    const size_t n_members = members.size();
    const int64_t n_features = members.front().shape().n_inputs();
    // Per sample and member: the loss and whether it was right; the ensemble last.
    std::vector<double> loss(size_t(n) * (n_members + 1));
    std::vector<uint8_t> right(loss.size());
    std::vector<uint8_t> pred(static_cast<size_t>(n));
    auto score = [&](int64_t first, int64_t last) {
        for (int64_t i = first; i < last; ++i) {
            const uint8_t* x = pixels + i * n_features;
            const size_t label = labels[i];
            std::vector<double> mean(size_t(members.front().shape().n_classes()), 0.0);
            for (size_t k = 0; k < n_members; ++k) {
                const std::vector<double> p = members[k].probabilities(x);
                for (size_t c = 0; c < mean.size(); ++c) mean[c] += p[c];
                loss[size_t(i) * (n_members + 1) + k] = xent(p[label]);
                right[size_t(i) * (n_members + 1) + k] = argmax(p) == label;
            }
            for (double& v : mean) v /= double(n_members);
            pred[size_t(i)] = uint8_t(argmax(mean));
            loss[size_t(i) * (n_members + 1) + n_members] = xent(mean[label]);
            right[size_t(i) * (n_members + 1) + n_members] = pred[size_t(i)] == label;
        }
    };
    // Samples are independent, and the sums below run in sample order, so the
    // thread count cannot change the result.
    const int64_t n_threads = std::clamp<int64_t>(int64_t(std::thread::hardware_concurrency()), 1,
                                                  std::max<int64_t>(n, 1));
    std::vector<std::thread> threads;
    for (int64_t t = 0; t < n_threads; ++t) {
        threads.emplace_back(score, n * t / n_threads, n * (t + 1) / n_threads);
    }
    for (auto& t : threads) t.join();

    EnsembleEvaluation r;
    r.members.resize(n_members);
    for (size_t k = 0; k <= n_members; ++k) {
        double sum = 0.0;
        int64_t correct = 0;
        for (int64_t i = 0; i < n; ++i) {
            sum += loss[size_t(i) * (n_members + 1) + k];
            correct += right[size_t(i) * (n_members + 1) + k];
        }
        EnsembleScore& s = k < n_members ? r.members[k] : r.ensemble;
        s.loss = n > 0 ? sum / double(n) : 0.0;
        s.accuracy = n > 0 ? double(correct) / double(n) : 0.0;
    }
    r.predictions = std::move(pred);
    return r;
}

}  // namespace mlp
