#include "host/sweep/summary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "host/base/atomic_file.hpp"
#include "host/base/error.hpp"
#include "host/base/number_text.hpp"
#include "host/base/read_file.hpp"
#include "host/sweep/grid.hpp"

namespace mlp {

// A model with a non-finite accuracy has no result to rank (a summary.json from elsewhere
// may hold one), and comparing NaNs would break the sort's ordering.
static bool finished(const ModelSummary& m) {
    return !m.stopped && m.epochs_done > 0 && std::isfinite(m.test_accuracy);
}

std::vector<size_t> rank_models(const SweepSummary& s) {
    std::vector<size_t> order(s.models.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        const ModelSummary& x = s.models[a];
        const ModelSummary& y = s.models[b];
        if (finished(x) != finished(y)) return finished(x);
        if (finished(x)) {
            if (x.test_accuracy != y.test_accuracy) return x.test_accuracy > y.test_accuracy;
            // A NaN loss sorts after every number, so that the order stays strict.
            const bool x_loss = !std::isnan(x.test_loss), y_loss = !std::isnan(y.test_loss);
            if (x_loss != y_loss) return x_loss;
            if (x_loss && x.test_loss != y.test_loss) return x.test_loss < y.test_loss;
        }
        return x.index < y.index;
    });
    return order;
}

static void mean_std(const std::vector<double>& v, double* mean, double* std_dev) {
    double sum = 0.0;
    for (double x : v) sum += x;
    *mean = sum / double(v.size());
    double sq = 0.0;
    for (double x : v) sq += (x - *mean) * (x - *mean);
    *std_dev = v.size() > 1 ? std::sqrt(sq / double(v.size() - 1)) : 0.0;
}

std::vector<SeedStats> seed_stats(const SweepSummary& s) {
    std::map<std::string, std::vector<const ModelSummary*>> by_key;
    std::vector<std::string> keys;  // in order of first appearance
    for (const ModelSummary& m : s.models) {
        if (!finished(m)) continue;
        auto& list = by_key[m.config_key];
        if (list.empty()) keys.push_back(m.config_key);
        list.push_back(&m);
    }
    std::vector<SeedStats> stats;
    for (const std::string& key : keys) {
        const auto& list = by_key[key];
        if (list.size() < 2) continue;
        SeedStats st;
        st.config_key = key;
        std::vector<double> acc, loss;
        for (const ModelSummary* m : list) {
            st.seeds.push_back(m->config.value("seed", uint64_t(0)));
            acc.push_back(m->test_accuracy);
            loss.push_back(m->test_loss);
        }
        mean_std(acc, &st.accuracy_mean, &st.accuracy_std);
        mean_std(loss, &st.loss_mean, &st.loss_std);
        stats.push_back(st);
    }
    std::stable_sort(stats.begin(), stats.end(), [](const SeedStats& a, const SeedStats& b) {
        return a.accuracy_mean > b.accuracy_mean;
    });
    return stats;
}

// JSON has no NaN; a model that finished no epoch has null results.
static nlohmann::json number_or_null(double v) {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

nlohmann::json summary_json(const SweepSummary& s) {
    nlohmann::json models = nlohmann::json::array();
    for (const ModelSummary& m : s.models) {
        nlohmann::json j = {{"index", m.index},
                            {"name", m.name},
                            {"config_key", m.config_key},
                            {"config", m.config},
                            {"train_args", m.train_args},
                            {"status", m.stopped ? "stopped" : "ok"},
                            {"epochs_done", m.epochs_done},
                            {"test_accuracy", number_or_null(m.test_accuracy)},
                            {"test_loss", number_or_null(m.test_loss)},
                            {"train_accuracy", number_or_null(m.train_accuracy)},
                            {"train_loss", number_or_null(m.train_loss)}};
        if (m.stopped) j["reason"] = m.reason;
        if (!m.file.empty()) j["file"] = m.file;
        models.push_back(j);
    }
    nlohmann::json board = nlohmann::json::array();
    for (size_t i : rank_models(s)) board.push_back(s.models[i].name);
    nlohmann::json stats = nlohmann::json::array();
    for (const SeedStats& st : seed_stats(s)) {
        stats.push_back({{"config_key", st.config_key},
                         {"n_seeds", st.seeds.size()},
                         {"seeds", st.seeds},
                         {"test_accuracy_mean", st.accuracy_mean},
                         {"test_accuracy_std", st.accuracy_std},
                         {"test_loss_mean", st.loss_mean},
                         {"test_loss_std", st.loss_std}});
    }
    return {{"format", "mlptrain-sweep"}, {"version", 1},       {"grid_id", s.grid_id},
            {"n_configs", s.n_configs},   {"shards", s.shards}, {"dataset", s.dataset},
            {"epochs", s.epochs},         {"models", models},   {"leaderboard", board},
            {"seed_stats", stats}};
}

namespace {

// Field access that names the file and the field on every defect.
struct Reader {
    const std::string& path;

    const nlohmann::json& field(const nlohmann::json& obj, const std::string& key,
                                const std::string& where) const {
        if (!obj.is_object() || !obj.contains(key)) {
            throw DataError(path, where + "has no \"" + key + "\"");
        }
        return obj.at(key);
    }
    std::string text(const nlohmann::json& obj, const std::string& key,
                     const std::string& where = "") const {
        const auto& v = field(obj, key, where);
        if (!v.is_string()) throw DataError(path, where + "\"" + key + "\" is not a string");
        return v.get<std::string>();
    }
    int64_t integer(const nlohmann::json& obj, const std::string& key,
                    const std::string& where = "") const {
        const auto& v = field(obj, key, where);
        if (!v.is_number_integer()) {
            throw DataError(path, where + "\"" + key + "\" is not an integer");
        }
        return v.get<int64_t>();
    }
    double real(const nlohmann::json& obj, const std::string& key,
                const std::string& where = "") const {
        const auto& v = field(obj, key, where);
        if (v.is_null()) return std::nan("");
        if (!v.is_number()) throw DataError(path, where + "\"" + key + "\" is not a number");
        return v.get<double>();
    }
};

}  // namespace

SweepSummary parse_summary(const nlohmann::json& j, const std::string& path) {
    const Reader r{path};
    if (!j.is_object() || !j.contains("format") || j["format"] != "mlptrain-sweep") {
        throw DataError(path, "is not a sweep summary (no \"format\": \"mlptrain-sweep\")");
    }
    if (r.integer(j, "version") != 1) {
        throw DataError(path, "summary version " + j["version"].dump() + " is not 1");
    }
    SweepSummary s;
    s.grid_id = r.text(j, "grid_id");
    s.n_configs = r.integer(j, "n_configs");
    // A sweep has at most --max-models' cap of configurations; a larger count is a damaged
    // file, and merging would list that many missing ones.
    if (s.n_configs < 1 || s.n_configs > k_max_sweep_configs) {
        throw DataError(path, "n_configs " + std::to_string(s.n_configs) +
                                  " is not between 1 and " + std::to_string(k_max_sweep_configs));
    }
    s.dataset = r.text(j, "dataset");
    s.epochs = r.integer(j, "epochs");
    const auto& shards = r.field(j, "shards", "");
    if (!shards.is_array()) throw DataError(path, "\"shards\" is not a list");
    for (const auto& k : shards) {
        if (!k.is_string()) throw DataError(path, "\"shards\" holds a non-string");
        s.shards.push_back(k.get<std::string>());
    }
    const auto& models = r.field(j, "models", "");
    if (!models.is_array()) throw DataError(path, "\"models\" is not a list");
    for (size_t i = 0; i < models.size(); ++i) {
        const auto& mj = models[i];
        const std::string where = "models[" + std::to_string(i) + "] ";
        ModelSummary m;
        m.index = r.integer(mj, "index", where);
        if (m.index < 0 || m.index >= s.n_configs) {
            throw DataError(path, where + "index " + std::to_string(m.index) +
                                      " lies outside the sweep's " + std::to_string(s.n_configs) +
                                      " configurations");
        }
        m.name = r.text(mj, "name", where);
        m.config_key = r.text(mj, "config_key", where);
        m.config = r.field(mj, "config", where);
        if (!m.config.is_object()) throw DataError(path, where + "\"config\" is not an object");
        m.train_args = r.text(mj, "train_args", where);
        const std::string status = r.text(mj, "status", where);
        if (status != "ok" && status != "stopped") {
            throw DataError(path, where + "status '" + status + "' is not ok or stopped");
        }
        m.stopped = status == "stopped";
        if (m.stopped) m.reason = r.text(mj, "reason", where);
        m.epochs_done = r.integer(mj, "epochs_done", where);
        m.test_accuracy = r.real(mj, "test_accuracy", where);
        m.test_loss = r.real(mj, "test_loss", where);
        m.train_accuracy = r.real(mj, "train_accuracy", where);
        m.train_loss = r.real(mj, "train_loss", where);
        if (mj.contains("file")) m.file = r.text(mj, "file", where);
        s.models.push_back(std::move(m));
    }
    return s;
}

SweepSummary load_summary(const std::string& path) {
    const auto j = nlohmann::json::parse(read_file(path, uint64_t(1) << 30), nullptr, false);
    if (j.is_discarded()) throw DataError(path, "is not valid JSON");
    return parse_summary(j, path);
}

void save_summary(const std::string& path, const SweepSummary& summary) {
    write_file_atomic(path, summary_json(summary).dump(2) + "\n", "sweep summary");
}

void print_leaderboard(std::ostream& out, const SweepSummary& s) {
    size_t width = 6;
    for (const ModelSummary& m : s.models) width = std::max(width, m.name.size());
    char line[512];
    out << "leaderboard (" << s.models.size() << " models, by test accuracy):\n";
    std::snprintf(line, sizeof line, "%5s  %-*s  %8s  %10s  %6s", "rank", int(width), "config",
                  "test_acc", "test_loss", "epochs");
    out << line << "\n";
    int rank = 0;
    for (size_t i : rank_models(s)) {
        const ModelSummary& m = s.models[i];
        if (finished(m)) {
            std::snprintf(line, sizeof line, "%5d  %-*s  %8s  %10.6f  %6lld", ++rank, int(width),
                          m.name.c_str(), percent_text(m.test_accuracy).c_str(), m.test_loss,
                          (long long)m.epochs_done);
        } else {
            std::snprintf(line, sizeof line, "%5s  %-*s  stopped after %lld epochs: %s", "-",
                          int(width), m.name.c_str(), (long long)m.epochs_done, m.reason.c_str());
        }
        out << line << "\n";
    }
    const auto stats = seed_stats(s);
    if (stats.empty()) return;
    size_t key_width = 6;
    for (const SeedStats& st : stats) key_width = std::max(key_width, st.config_key.size());
    out << "mean +- std over seeds:\n";
    std::snprintf(line, sizeof line, "  %-*s  %5s  %-18s  %s", int(key_width), "config", "seeds",
                  "test_acc", "test_loss");
    out << line << "\n";
    for (const SeedStats& st : stats) {
        char acc[48];
        std::snprintf(acc, sizeof acc, "%.2f%% +- %.2f%%", 100.0 * st.accuracy_mean,
                      100.0 * st.accuracy_std);
        std::snprintf(line, sizeof line, "  %-*s  %5zu  %-18s  %.6f +- %.6f", int(key_width),
                      st.config_key.c_str(), st.seeds.size(), acc, st.loss_mean, st.loss_std);
        out << line << "\n";
    }
}

SweepSummary merge_summaries(const std::vector<SweepSummary>& parts,
                             const std::vector<std::string>& paths, std::vector<int64_t>* missing) {
    if (parts.empty()) throw Error("sweep-merge: no summaries to merge");
    SweepSummary merged = parts.front();
    merged.models.clear();
    merged.shards.clear();
    std::map<int64_t, size_t> owner;  // index -> part
    for (size_t p = 0; p < parts.size(); ++p) {
        const SweepSummary& s = parts[p];
        // The grid fingerprint holds the flags, not the data: shards trained on other data
        // sets are not one sweep either.
        if (s.grid_id != merged.grid_id || s.n_configs != merged.n_configs ||
            s.dataset != merged.dataset) {
            throw DataError(paths[p], "is from another sweep (grid " + s.grid_id + ", " +
                                          std::to_string(s.n_configs) + " configurations, data " +
                                          s.dataset + ") than " + paths[0] + " (grid " +
                                          merged.grid_id + ", " + std::to_string(merged.n_configs) +
                                          ", data " + merged.dataset + ")");
        }
        for (const std::string& k : s.shards) merged.shards.push_back(k);
        for (const ModelSummary& m : s.models) {
            const auto [it, fresh] = owner.emplace(m.index, p);
            if (!fresh) {
                throw DataError(paths[p], "holds configuration " + std::to_string(m.index) + " (" +
                                              m.name + ") that " + paths[it->second] +
                                              " holds too; merge each shard once");
            }
            merged.models.push_back(m);
        }
    }
    std::sort(merged.models.begin(), merged.models.end(),
              [](const ModelSummary& a, const ModelSummary& b) { return a.index < b.index; });
    if (missing) {
        missing->clear();
        for (int64_t i = 0; i < merged.n_configs; ++i) {
            if (!owner.count(i)) missing->push_back(i);
        }
    }
    return merged;
}

}  // namespace mlp
