#include "host/sweep/grid.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "host/base/error.hpp"
#include "host/base/fnv1a.hpp"
#include "host/base/number_text.hpp"
#include "host/config/kernel_options.hpp"
#include "host/config/optimizer.hpp"

namespace mlp {

static std::vector<std::string> split(const std::string& text, char sep) {
    std::vector<std::string> items;
    std::string item;
    std::istringstream in(text);
    while (std::getline(in, item, sep)) items.push_back(item);
    // getline drops a trailing empty item; keep it so that "1," is refused.
    if (!text.empty() && text.back() == sep) items.emplace_back();
    return items;
}

// Parsed as CLI11 parses a single --lr or --momentum (strtold, then narrowed), so a
// swept value is the very float or double that `mlptrain train` would get.
template <class T>
static std::vector<T> parse_reals(const std::string& text, const std::string& flag) {
    std::vector<T> values;
    if (text.empty()) throw UsageError(flag, "needs at least one value");
    for (const std::string& item : split(text, ',')) {
        if (item.find("..") != std::string::npos) {
            throw UsageError(flag, "'" + item + "' is a range; ranges A..B are for --seed, " +
                                       "give the values as a comma list");
        }
        char* end = nullptr;
        errno = 0;
        const long double v = item.empty() ? 0.0L : std::strtold(item.c_str(), &end);
        if (item.empty() || end != item.c_str() + item.size() || !std::isfinite(double(v)) ||
            !std::isfinite(T(v))) {
            throw UsageError(flag,
                             "'" + text + "' is not a comma list of numbers (item '" + item + "')");
        }
        for (T seen : values) {
            if (seen == T(v)) throw UsageError(flag, "the value " + item + " appears twice");
        }
        values.push_back(T(v));
    }
    return values;
}

std::vector<double> parse_real_list(const std::string& text, const std::string& flag) {
    return parse_reals<double>(text, flag);
}

std::vector<float> parse_float_list(const std::string& text, const std::string& flag) {
    return parse_reals<float>(text, flag);
}

static bool parse_u64(const std::string& s, uint64_t* v) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return false;
    errno = 0;
    char* end = nullptr;
    *v = std::strtoull(s.c_str(), &end, 10);
    return errno == 0 && end == s.c_str() + s.size();
}

std::vector<uint64_t> parse_seed_list(const std::string& text, const std::string& flag,
                                      int64_t max_values) {
    std::vector<uint64_t> seeds;
    std::set<uint64_t> seen;
    if (text.empty()) throw UsageError(flag, "needs at least one value");
    for (const std::string& item : split(text, ',')) {
        uint64_t first = 0, last = 0;
        const size_t dots = item.find("..");
        const bool ok = dots == std::string::npos ? parse_u64(item, &first) && (last = first, true)
                                                  : parse_u64(item.substr(0, dots), &first) &&
                                                        parse_u64(item.substr(dots + 2), &last);
        if (!ok) {
            throw UsageError(flag, "'" + item + "' is not a non-negative integer or a range A..B");
        }
        if (last < first) {
            throw UsageError(flag, "the range '" + item + "' ends before it starts");
        }
        if (last - first >= uint64_t(max_values) ||
            int64_t(seeds.size()) + int64_t(last - first) >= max_values) {
            throw UsageError(flag, "'" + text + "' gives more than " + std::to_string(max_values) +
                                       " values (--max-models)");
        }
        for (uint64_t s = first;; ++s) {
            if (!seen.insert(s).second) {
                throw UsageError(flag, "the seed " + std::to_string(s) + " appears twice");
            }
            seeds.push_back(s);
            if (s == last) break;
        }
    }
    return seeds;
}

std::vector<std::vector<int64_t>> parse_hidden_list(const std::vector<std::string>& texts,
                                                    const std::string& flag) {
    std::vector<std::vector<int64_t>> shapes;
    for (const std::string& text : texts) {
        for (const std::string& shape_text : split(text, '/')) {
            std::vector<int64_t> widths;
            if (shape_text != "none") {
                for (const std::string& w : split(shape_text, ',')) {
                    uint64_t v = 0;
                    if (!parse_u64(w, &v) || v == 0 || v > (1u << 20)) {
                        throw UsageError(flag, "'" + text +
                                                   "' is not a list of shapes such as "
                                                   "128,64/256 (widths 1..1048576, or none)");
                    }
                    widths.push_back(int64_t(v));
                }
            }
            for (const auto& seen : shapes) {
                if (seen == widths) {
                    throw UsageError(flag, "the shape '" + shape_text + "' appears twice");
                }
            }
            shapes.push_back(widths);
        }
    }
    if (shapes.empty()) throw UsageError(flag, "needs at least one shape");
    return shapes;
}

Shard parse_shard(const std::string& text, const std::string& flag) {
    const size_t slash = text.find('/');
    uint64_t k = 0, n = 0;
    if (slash == std::string::npos || !parse_u64(text.substr(0, slash), &k) ||
        !parse_u64(text.substr(slash + 1), &n) || n == 0 || n > (uint64_t(1) << 31)) {
        throw UsageError(flag, "'" + text + "' is not K/N with 0 <= K < N (e.g. 0/4)");
    }
    if (k >= n) {
        throw UsageError(flag, "'" + text + "': K must be below N (shards are 0.." +
                                   std::to_string(n - 1) + ")");
    }
    return Shard{int64_t(k), int64_t(n)};
}

static int64_t count_or_one(size_t n) {
    return n == 0 ? 1 : int64_t(n);
}

int64_t grid_size(const SweepAxes& a) {
    const int64_t counts[] = {count_or_one(a.hidden.size()),       count_or_one(a.momentum.size()),
                              count_or_one(a.weight_decay.size()), count_or_one(a.beta1.size()),
                              count_or_one(a.beta2.size()),        count_or_one(a.lr.size()),
                              count_or_one(a.seed.size())};
    int64_t product = 1;
    for (int64_t c : counts) {
        if (product > std::numeric_limits<int64_t>::max() / c) {
            return std::numeric_limits<int64_t>::max();
        }
        product *= c;
    }
    return product;
}

static std::string join(const std::vector<int64_t>& v, const char* sep) {
    if (v.empty()) return "none";
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + std::to_string(v[i]);
    return s;
}

std::vector<SweepPoint> expand_grid(const TrainConfig& base, const SweepAxes& a,
                                    int64_t max_models) {
    const int64_t n = grid_size(a);
    if (n > max_models) {
        std::string dims;
        for (size_t c : {a.hidden.size(), a.momentum.size(), a.weight_decay.size(), a.beta1.size(),
                         a.beta2.size(), a.lr.size(), a.seed.size()}) {
            if (c > 1) dims += (dims.empty() ? "" : " x ") + std::to_string(c);
        }
        throw UsageError("--max-models",
                         "the lists give " +
                             (n == std::numeric_limits<int64_t>::max() ? std::string("too many")
                                                                       : std::to_string(n)) +
                             " configurations (" + dims + "), above the limit of " +
                             std::to_string(max_models) +
                             "; shorten the lists, split the sweep with --shard K/N, or raise "
                             "--max-models");
    }
    const bool sgd = base.optimizer.kind == OptimizerKind::sgd;
    if (!sgd && !a.momentum.empty()) {
        throw UsageError("--momentum", "is for --optimizer sgd; adam has --beta1");
    }
    if (sgd && !a.beta1.empty()) throw UsageError("--beta1", "is for --optimizer adam or adamw");
    if (sgd && !a.beta2.empty()) throw UsageError("--beta2", "is for --optimizer adam or adamw");

    // An absent list is the base value, swept over once.
    auto or_base = [](auto list, auto value) {
        if (list.empty()) list.push_back(value);
        return list;
    };
    const auto hidden = or_base(a.hidden, base.hidden);
    const auto momentum = or_base(a.momentum, base.optimizer.momentum);
    const auto weight_decay = or_base(a.weight_decay, base.optimizer.weight_decay);
    const auto beta1 = or_base(a.beta1, base.optimizer.beta1);
    const auto beta2 = or_base(a.beta2, base.optimizer.beta2);
    const auto lr = or_base(a.lr, base.lr);
    const auto seed = or_base(a.seed, base.seed);

    std::vector<SweepPoint> points;
    std::set<std::string> names;
    for (const auto& h : hidden)
        for (double m : momentum)
            for (double wd : weight_decay)
                for (double b1 : beta1)
                    for (double b2 : beta2)
                        for (float l : lr)
                            for (uint64_t s : seed) {
                                SweepPoint p;
                                p.index = int64_t(points.size());
                                p.config = base;
                                p.config.hidden = h;
                                p.config.optimizer.momentum = m;
                                p.config.optimizer.weight_decay = wd;
                                p.config.optimizer.beta1 = b1;
                                p.config.optimizer.beta2 = b2;
                                p.config.lr = l;
                                p.config.seed = s;
                                std::string key = "h" + join(h, "x");
                                if (!a.momentum.empty()) key += "_m" + shortest_text(m);
                                if (!a.weight_decay.empty()) key += "_wd" + shortest_text(wd);
                                if (!a.beta1.empty()) key += "_b1-" + shortest_text(b1);
                                if (!a.beta2.empty()) key += "_b2-" + shortest_text(b2);
                                key += "_lr" + shortest_text(l);
                                p.config_key = key;
                                p.name = key + "_seed" + std::to_string(s);
                                if (!names.insert(p.name).second) {
                                    throw UsageError("--lr",
                                                     "two configurations are both named " + p.name);
                                }
                                points.push_back(std::move(p));
                            }
    return points;
}

std::vector<SweepPoint> select_shard(const std::vector<SweepPoint>& points, const Shard& shard) {
    std::vector<SweepPoint> kept;
    for (const SweepPoint& p : points) {
        if (shard.keeps(p.index)) kept.push_back(p);
    }
    return kept;
}

std::vector<std::vector<size_t>> group_points(const std::vector<SweepPoint>& points) {
    using Key = std::tuple<std::vector<int64_t>, int64_t, int>;
    std::map<Key, size_t> slot;
    std::vector<std::vector<size_t>> groups;
    for (size_t i = 0; i < points.size(); ++i) {
        const TrainConfig& c = points[i].config;
        const Key key{c.hidden, c.batch_size, int(c.optimizer.kind)};
        const auto [it, fresh] = slot.emplace(key, groups.size());
        if (fresh) groups.emplace_back();
        groups[it->second].push_back(i);
    }
    return groups;
}

std::string train_args(const TrainConfig& c) {
    const OptimizerConfig& o = c.optimizer;
    std::ostringstream s;
    s << "--hidden " << join(c.hidden, ",") << " --batch-size " << c.batch_size
      << " --test-batch-size " << c.test_batch_size << " --epochs " << c.epochs << " --lr "
      << shortest_text(c.lr) << " --seed " << c.seed << " --optimizer " << to_string(o.kind);
    if (o.kind == OptimizerKind::sgd) {
        if (o.momentum != 0.0) s << " --momentum " << shortest_text(o.momentum);
        if (o.nesterov) s << " --nesterov";
    } else {
        s << " --beta1 " << shortest_text(o.beta1) << " --beta2 " << shortest_text(o.beta2)
          << " --eps " << shortest_text(o.eps);
    }
    s << " --weight-decay " << shortest_text(o.weight_decay) << " --schedule "
      << to_string(c.schedule.kind);
    if (c.schedule.kind == ScheduleKind::step) {
        s << " --gamma " << shortest_text(c.schedule.gamma) << " --step-size "
          << c.schedule.step_size;
    }
    if (c.schedule.kind == ScheduleKind::onecycle) {
        s << " --warmup-pct " << shortest_text(c.schedule.warmup_pct);
    }
    if (schedule_depends_on_epochs(c.schedule.kind) && c.schedule_epochs > 0) {
        s << " --schedule-epochs " << c.schedule_epochs;
    }
    if (c.augment_shift > 0) s << " --augment-shift " << c.augment_shift;
    if (c.on_nan == NanPolicy::skip_batch) s << " --on-nan skip-batch";
    if (c.data.train_samples > 0) s << " --train-samples " << c.data.train_samples;
    if (c.data.test_samples > 0) s << " --test-samples " << c.data.test_samples;
    // The flags below change the model or its arithmetic, so `train` needs them to make the
    // same model; at their defaults they are left out, as a user would type the command.
    if (c.data.classes > 0) s << " --classes " << c.data.classes;
    if (c.kernels != TrainConfig{}.kernels) s << " --kernels " << to_string(c.kernels);
    if (c.precision != TrainConfig{}.precision) s << " --precision " << to_string(c.precision);
    // No thread count: on the CPU it changes no result (host/cpu/thread_policy.hpp).
    return s.str();
}

std::string grid_id(const TrainConfig& base, const SweepAxes& a) {
    std::ostringstream s;
    s << train_args(base) << "|";
    for (const auto& h : a.hidden) s << join(h, ",") << "/";
    s << "|";
    for (double v : a.momentum) s << shortest_text(v) << ",";
    s << "|";
    for (double v : a.weight_decay) s << shortest_text(v) << ",";
    s << "|";
    for (double v : a.beta1) s << shortest_text(v) << ",";
    s << "|";
    for (double v : a.beta2) s << shortest_text(v) << ",";
    s << "|";
    for (float v : a.lr) s << shortest_text(v) << ",";
    s << "|";
    for (uint64_t v : a.seed) s << v << ",";
    const std::string text = s.str();
    const uint64_t h = fnv1a64(text.data(), text.size());
    char buf[20];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
    return buf;
}

}  // namespace mlp
