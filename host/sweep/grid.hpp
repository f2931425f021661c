// The configurations of a sweep: comma lists (and integer ranges "1..8") for
// the swept training flags, their cartesian product in a fixed order, names
// built from each configuration, the groups that share a model shape, and the
// shard of the product one machine runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/config/train_config.hpp"

namespace mlp {

// The values of the swept flags; an empty list keeps the base config's value.
struct SweepAxes {
    std::vector<std::vector<int64_t>> hidden;
    std::vector<double> momentum;
    std::vector<double> weight_decay;
    std::vector<double> beta1;
    std::vector<double> beta2;
    std::vector<float> lr;
    std::vector<uint64_t> seed;
};

// "0.05,0.1" -> {0.05, 0.1}: finite numbers. Throws UsageError naming `flag` for an empty
// item, a value that is not a whole number text, a range (ranges are for --seed) or a
// repeated value.
std::vector<double> parse_real_list(const std::string& text, const std::string& flag);
// The same for a float flag (--lr): values are parsed as the single flag parses them.
std::vector<float> parse_float_list(const std::string& text, const std::string& flag);

// "1,2,5..8" -> {1, 2, 5, 6, 7, 8}: non-negative integers and inclusive ranges A..B with
// A <= B, at most `max_values` in all. Throws UsageError naming `flag` otherwise, or when a
// value repeats.
std::vector<uint64_t> parse_seed_list(const std::string& text, const std::string& flag,
                                      int64_t max_values);

// Each text is one or more shapes separated by '/': "128,64/256" -> {{128, 64}, {256}};
// "none" is a shape without hidden layers. Commas already separate the widths of one
// shape, hence the slash (repeating the flag works too). Throws UsageError naming `flag`.
std::vector<std::vector<int64_t>> parse_hidden_list(const std::vector<std::string>& texts,
                                                    const std::string& flag);

// "K/N" with 0 <= K < N: the shard keeping the configurations whose index is K mod N.
struct Shard {
    int64_t k = 0;
    int64_t n = 1;
    bool keeps(int64_t index) const { return index % n == k; }
    std::string to_string() const { return std::to_string(k) + "/" + std::to_string(n); }
};
Shard parse_shard(const std::string& text, const std::string& flag);

// How many configurations the lists give (their product), saturating at INT64_MAX.
int64_t grid_size(const SweepAxes& axes);

struct SweepPoint {
    int64_t index = 0;       // position in the whole product (before sharding)
    std::string name;        // unique, a file name: "h128x64_lr0.05_seed1"
    std::string config_key;  // the name without the seed: what seeds of one config share
    TrainConfig config;
};

// The most configurations a sweep may have: the ceiling of --max-models, and of a summary's
// n_configs that sweep-merge accepts.
constexpr int64_t k_max_sweep_configs = int64_t(1) << 20;

// The product in a fixed order (hidden outermost, then momentum, weight decay, beta1, beta2,
// lr, and the seed innermost), each point the base config with its values. A name carries
// the hidden sizes, lr and seed, and every other flag that was swept. Throws UsageError
// naming --max-models when the product exceeds `max_models`, and naming the flag when a
// value does not suit the optimizer (momentum for adam, betas for sgd) or two values print
// alike in a name.
std::vector<SweepPoint> expand_grid(const TrainConfig& base, const SweepAxes& axes,
                                    int64_t max_models);

// The points of `points` that `shard` keeps, in order.
std::vector<SweepPoint> select_shard(const std::vector<SweepPoint>& points, const Shard& shard);

// Models that train side by side: the same layer sizes, batch size and optimizer kind.
// Groups in order of their first point; indices into `points`.
std::vector<std::vector<size_t>> group_points(const std::vector<SweepPoint>& points);

// The flags that make `mlptrain train` run this configuration ("--hidden 128,64 --lr 0.05
// ..."), floats written so that they parse back to the same value; data, device and
// output flags are left out.
std::string train_args(const TrainConfig& config);

// A fingerprint of the base config and the lists, the same for every shard of one sweep.
std::string grid_id(const TrainConfig& base, const SweepAxes& axes);

}  // namespace mlp
