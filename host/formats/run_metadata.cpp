#include "host/formats/run_metadata.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "host/base/error.hpp"
#include "host/base/number_text.hpp"
#include "host/config/names.hpp"
#include "host/model/predict.hpp"

namespace mlp {

namespace {

std::string join(const std::vector<int64_t>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s;
}

// The text of a metadata value that does not read back as its key's type; caught by the caller,
// who knows the file.
struct BadValue {
    std::string expected;
};

int64_t read_int(const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || text[0] == '+' || text[0] == ' ') {
        throw BadValue{"an integer"};
    }
    return v;
}

uint64_t read_unsigned(const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || !(text[0] >= '0' && text[0] <= '9')) {
        throw BadValue{"a non-negative integer"};
    }
    return v;
}

double read_double(const std::string& text) {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(v) || text[0] == ' ') {
        throw BadValue{"a finite number"};
    }
    return v;
}

std::vector<int64_t> read_sizes(const std::string& text) {
    std::vector<int64_t> sizes;
    if (text.empty()) return sizes;
    size_t pos = 0;
    for (;;) {
        const size_t comma = text.find(',', pos);
        const std::string item = text.substr(pos, comma == std::string::npos ? comma : comma - pos);
        const int64_t v = read_int(item);
        if (v <= 0) throw BadValue{"a comma-separated list of positive sizes"};
        sizes.push_back(v);
        if (comma == std::string::npos) return sizes;
        pos = comma + 1;
    }
}

bool read_bool(const std::string& text) {
    if (text == "true") return true;
    if (text == "false") return false;
    throw BadValue{"true or false"};
}

// What a resumed run does with a key.
enum class OnResume {
    keep,         // a flag that shapes training: the checkpoint's value, or refused if different
    may_change,   // a flag a resumed run may change (--epochs): the checkpoint's by default
    data,         // a fact of the data: compared with this run's data
    fingerprint,  // compared where both sides have the data's fingerprint
    data_name,    // compared only where one side lacks the fingerprint
    ignore,       // a record (the format, the epochs done)
};

struct Run {
    const TrainConfig& config;
    const RunData& data;
    int64_t epochs_done;
};

using Text = std::optional<std::string>;

struct Field {
    const char* key;
    const char* flag;   // the flag as typed, matched against the flags given; "" if none
    const char* label;  // what messages call it; nullptr: the flag
    OnResume on_resume;
    Text (*write)(const Run&);                       // nullopt: not written for this run
    void (*read)(TrainConfig&, const std::string&);  // nullptr: not read into a config
};

bool is_sgd(const TrainConfig& c) {
    return c.optimizer.kind == OptimizerKind::sgd;
}

// The input normalisation training and eval apply: pixel / 255.
const char* const k_input_scale = "1/255";
const char* const k_input_offset = "0";

const Field k_fields[] = {
    {"format", "", "format", OnResume::ignore, [](const Run&) -> Text { return "mlptrain"; },
     nullptr},
    {"input_scale", "", "input_scale (mlptrain trains on pixel * 1/255)", OnResume::keep,
     [](const Run&) -> Text { return k_input_scale; }, nullptr},
    {"input_offset", "", "input_offset (mlptrain trains on pixel * 1/255 + 0)", OnResume::keep,
     [](const Run&) -> Text { return k_input_offset; }, nullptr},
    {"dataset", "", "the data set's name (--data/--dataset)", OnResume::data_name,
     [](const Run& r) -> Text { return r.data.name; }, nullptr},
    {"n_classes", "", "the data's class count (--data/--dataset)", OnResume::data,
     [](const Run& r) -> Text { return std::to_string(r.data.n_classes); }, nullptr},
    {"train_samples", "--train-samples", nullptr, OnResume::data,
     [](const Run& r) -> Text { return std::to_string(r.data.n_train); },
     [](TrainConfig& c, const std::string& t) { c.data.train_samples = read_int(t); }},
    {"test_samples", "--test-samples", nullptr, OnResume::fingerprint,
     [](const Run& r) -> Text {
         if (!r.data.fnv1a64) return std::nullopt;
         return std::to_string(r.data.n_test);
     },
     [](TrainConfig& c, const std::string& t) { c.data.test_samples = read_int(t); }},
    {"image_rows", "", "the data's image rows (--data/--dataset)", OnResume::fingerprint,
     [](const Run& r) -> Text {
         if (!r.data.fnv1a64) return std::nullopt;
         return std::to_string(r.data.image_rows);
     },
     nullptr},
    {"image_cols", "", "the data's image columns (--data/--dataset)", OnResume::fingerprint,
     [](const Run& r) -> Text {
         if (!r.data.fnv1a64) return std::nullopt;
         return std::to_string(r.data.image_cols);
     },
     nullptr},
    {"data_fingerprint", "",
     "the data (--data/--dataset), by FNV-1a 64 of its decoded images and labels,",
     OnResume::fingerprint,
     [](const Run& r) -> Text {
         if (!r.data.fnv1a64) return std::nullopt;
         char buf[32];
         std::snprintf(buf, sizeof buf, "fnv1a64:%016llx", (unsigned long long)*r.data.fnv1a64);
         return std::string(buf);
     },
     nullptr},
    {"epoch", "", "epoch", OnResume::ignore,
     [](const Run& r) -> Text { return std::to_string(r.epochs_done); }, nullptr},
    {"epochs", "--epochs", nullptr, OnResume::may_change,
     [](const Run& r) -> Text { return std::to_string(r.config.epochs); },
     [](TrainConfig& c, const std::string& t) { c.epochs = read_int(t); }},
    {"seed", "--seed", nullptr, OnResume::keep,
     [](const Run& r) -> Text { return std::to_string(r.config.seed); },
     [](TrainConfig& c, const std::string& t) { c.seed = read_unsigned(t); }},
    {"batch_size", "--batch-size", nullptr, OnResume::keep,
     [](const Run& r) -> Text { return std::to_string(r.config.batch_size); },
     [](TrainConfig& c, const std::string& t) { c.batch_size = read_int(t); }},
    {"hidden", "--hidden", nullptr, OnResume::keep,
     [](const Run& r) -> Text { return join(r.config.hidden); },
     [](TrainConfig& c, const std::string& t) { c.hidden = read_sizes(t); }},
    {"lr", "--lr", nullptr, OnResume::keep,
     [](const Run& r) -> Text { return shortest_text(r.config.lr); },
     [](TrainConfig& c, const std::string& t) { c.lr = float(read_double(t)); }},
    {"optimizer", "--optimizer", nullptr, OnResume::keep,
     [](const Run& r) -> Text { return to_string(r.config.optimizer.kind); },
     [](TrainConfig& c, const std::string& t) {
         try {
             c.optimizer.kind = parse_optimizer_kind(t);
         } catch (const Error&) {
             throw BadValue{name_list(k_optimizers)};
         }
     }},
    {"weight_decay", "--weight-decay", nullptr, OnResume::keep,
     [](const Run& r) -> Text { return shortest_text(r.config.optimizer.weight_decay); },
     [](TrainConfig& c, const std::string& t) { c.optimizer.weight_decay = read_double(t); }},
    {"schedule", "--schedule", nullptr, OnResume::keep,
     [](const Run& r) -> Text { return to_string(r.config.schedule.kind); },
     [](TrainConfig& c, const std::string& t) {
         try {
             c.schedule.kind = parse_schedule_kind(t);
         } catch (const Error&) {
             throw BadValue{name_list(k_schedules)};
         }
     }},
    {"precision", "--precision", nullptr, OnResume::keep,
     [](const Run& r) -> Text { return to_string(r.config.precision); },
     [](TrainConfig& c, const std::string& t) {
         try {
             c.precision = parse_precision(t);
         } catch (const Error&) {
             throw BadValue{name_list(k_precisions)};
         }
     }},
    // Both paths compute the same step (bit for bit on the CPU), so a resumed run may switch.
    {"kernels", "--kernels", nullptr, OnResume::may_change,
     [](const Run& r) -> Text { return to_string(r.config.kernels); },
     [](TrainConfig& c, const std::string& t) {
         try {
             c.kernels = parse_kernel_path(t);
         } catch (const Error&) {
             throw BadValue{name_list(k_kernel_paths)};
         }
     }},
    {"augment_shift", "--augment-shift", nullptr, OnResume::keep,
     [](const Run& r) -> Text { return std::to_string(r.config.augment_shift); },
     [](TrainConfig& c, const std::string& t) { c.augment_shift = int(read_int(t)); }},
    {"momentum", "--momentum", nullptr, OnResume::keep,
     [](const Run& r) -> Text {
         if (!is_sgd(r.config)) return std::nullopt;
         return shortest_text(r.config.optimizer.momentum);
     },
     [](TrainConfig& c, const std::string& t) { c.optimizer.momentum = read_double(t); }},
    {"nesterov", "--nesterov", nullptr, OnResume::keep,
     [](const Run& r) -> Text {
         if (!is_sgd(r.config)) return std::nullopt;
         return std::string(r.config.optimizer.nesterov ? "true" : "false");
     },
     [](TrainConfig& c, const std::string& t) { c.optimizer.nesterov = read_bool(t); }},
    {"beta1", "--beta1", nullptr, OnResume::keep,
     [](const Run& r) -> Text {
         if (is_sgd(r.config)) return std::nullopt;
         return shortest_text(r.config.optimizer.beta1);
     },
     [](TrainConfig& c, const std::string& t) { c.optimizer.beta1 = read_double(t); }},
    {"beta2", "--beta2", nullptr, OnResume::keep,
     [](const Run& r) -> Text {
         if (is_sgd(r.config)) return std::nullopt;
         return shortest_text(r.config.optimizer.beta2);
     },
     [](TrainConfig& c, const std::string& t) { c.optimizer.beta2 = read_double(t); }},
    {"eps", "--eps", nullptr, OnResume::keep,
     [](const Run& r) -> Text {
         if (is_sgd(r.config)) return std::nullopt;
         return shortest_text(r.config.optimizer.eps);
     },
     [](TrainConfig& c, const std::string& t) { c.optimizer.eps = read_double(t); }},
    {"gamma", "--gamma", nullptr, OnResume::keep,
     [](const Run& r) -> Text {
         if (r.config.schedule.kind != ScheduleKind::step) return std::nullopt;
         return shortest_text(r.config.schedule.gamma);
     },
     [](TrainConfig& c, const std::string& t) { c.schedule.gamma = read_double(t); }},
    {"step_size", "--step-size", nullptr, OnResume::keep,
     [](const Run& r) -> Text {
         if (r.config.schedule.kind != ScheduleKind::step) return std::nullopt;
         return std::to_string(r.config.schedule.step_size);
     },
     [](TrainConfig& c, const std::string& t) { c.schedule.step_size = read_int(t); }},
    {"warmup_pct", "--warmup-pct", nullptr, OnResume::keep,
     [](const Run& r) -> Text {
         if (r.config.schedule.kind != ScheduleKind::onecycle) return std::nullopt;
         return shortest_text(r.config.schedule.warmup_pct);
     },
     [](TrainConfig& c, const std::string& t) { c.schedule.warmup_pct = read_double(t); }},
    {"schedule_epochs", "--schedule-epochs", "--schedule-epochs (default: --epochs)",
     OnResume::keep,
     [](const Run& r) -> Text {
         if (!schedule_depends_on_epochs(r.config.schedule.kind)) return std::nullopt;
         return std::to_string(r.config.span_epochs());
     },
     [](TrainConfig& c, const std::string& t) { c.schedule_epochs = read_int(t); }},
};

std::string label_of(const Field& f) {
    return f.label ? f.label : f.flag;
}

std::string value_or_unset(const std::map<std::string, std::string>& m, const char* key) {
    const auto it = m.find(key);
    return it == m.end() ? std::string("(not set)") : it->second;
}

std::string mismatch(const Field& f, const std::string& here, const std::string& was) {
    return label_of(f) + " is " + here + " here but was " + was + " in the checkpoint";
}

[[noreturn]] void throw_mismatches(const std::string& path, const std::vector<std::string>& found,
                                   const std::string& advice) {
    std::string what = "--resume " + path + ": ";
    for (const std::string& m : found) what += m + "; ";
    throw Error(what + advice);
}

}  // namespace

std::map<std::string, std::string> training_metadata(const TrainConfig& config, const RunData& data,
                                                     int64_t epochs_done) {
    const Run run{config, data, epochs_done};
    std::map<std::string, std::string> m;
    for (const Field& f : k_fields) {
        if (Text t = f.write(run)) m[f.key] = std::move(*t);
    }
    return m;
}

std::map<std::string, std::string> training_metadata(const TrainConfig& config,
                                                     const std::string& dataset_name,
                                                     int64_t n_train, int64_t n_classes,
                                                     int64_t epochs_done) {
    RunData data;
    data.name = dataset_name;
    data.n_train = n_train;
    data.n_classes = n_classes;
    return training_metadata(config, data, epochs_done);
}

void check_resume_matches(const std::map<std::string, std::string>& saved,
                          const std::map<std::string, std::string>& now, const std::string& path) {
    const bool fingerprinted =
        saved.count("data_fingerprint") != 0 && now.count("data_fingerprint") != 0;
    std::vector<std::string> found;
    for (const Field& f : k_fields) {
        const bool compared = f.on_resume == OnResume::keep || f.on_resume == OnResume::data ||
                              (f.on_resume == OnResume::fingerprint && fingerprinted) ||
                              (f.on_resume == OnResume::data_name && !fingerprinted);
        if (!compared) continue;
        const std::string was = value_or_unset(saved, f.key), is = value_or_unset(now, f.key);
        if (was != is) found.push_back(mismatch(f, is, was));
    }
    if (!found.empty()) {
        throw_mismatches(path, found,
                         "a resumed run must keep every flag that shapes training (only "
                         "--epochs, the device and output flags may change)");
    }
}

TrainConfig resume_config(const std::map<std::string, std::string>& saved,
                          const TrainConfig& parsed, const std::set<std::string>& given,
                          const std::string& path) {
    TrainConfig config = parsed;
    for (const Field& f : k_fields) {
        if (!f.read || given.count(f.flag)) continue;
        const auto it = saved.find(f.key);
        if (it == saved.end()) continue;
        try {
            f.read(config, it->second);
        } catch (const BadValue& bad) {
            throw DataError(path, std::string("__metadata__ ") + f.key + " is \"" + it->second +
                                      "\", expected " + bad.expected);
        }
    }
    // Compared against the effective config, since whether a flag applies depends on the
    // optimizer and schedule, which may come from the checkpoint.
    const RunData no_data;
    const Run run{config, no_data, 0};
    std::vector<std::string> found;
    for (const Field& f : k_fields) {
        if (f.on_resume != OnResume::keep || !f.read || !given.count(f.flag)) continue;
        const Text here = f.write(run);
        if (!here) {
            found.push_back(std::string(f.flag) + " does not apply to --optimizer " +
                            to_string(config.optimizer.kind) + " with --schedule " +
                            to_string(config.schedule.kind));
            continue;
        }
        const std::string was = value_or_unset(saved, f.key);
        if (*here != was) found.push_back(mismatch(f, *here, was));
    }
    if (config.schedule.kind == ScheduleKind::onecycle && config.epochs > config.span_epochs()) {
        found.push_back("--epochs " + std::to_string(config.epochs) +
                        " runs past the one-cycle schedule, which spans " +
                        std::to_string(config.span_epochs()) + " epochs");
    }
    if (!found.empty()) {
        throw_mismatches(path, found,
                         "leave a flag out to take the checkpoint's value (only --epochs, the "
                         "device and output flags may change)");
    }
    return config;
}

void check_input_normalisation(const std::map<std::string, std::string>& metadata,
                               const std::string& path) {
    const struct {
        const char* key;
        const char* applied;
        double value;
    } expected[] = {{"input_scale", k_input_scale, 1.0 / 255.0},
                    {"input_offset", k_input_offset, 0.0}};
    for (const auto& e : expected) {
        const auto it = metadata.find(e.key);
        if (it == metadata.end()) continue;
        double v = 0.0;
        if (!parse_metadata_number(it->second, &v)) {
            throw DataError(path, std::string("metadata ") + e.key + " '" + it->second +
                                      "' is not a number or a/b");
        }
        // Equal up to the rounding of a decimal rendering of 1/255.
        if (std::fabs(v - e.value) > 1e-9 * (1.0 / 255.0)) {
            const std::string applied = std::string(e.key) + " " + e.applied;
            throw DataError(path, std::string("metadata ") + e.key + " is " + it->second +
                                      ", but train and eval feed the network pixel * 1/255 + 0 (" +
                                      applied + "); predict honours the model's value instead");
        }
    }
}

}  // namespace mlp
