// mlptrain._core: the Python package's binding to the C++ core, kept thin: NumPy arrays in and
// out, mlp::Error as Python exceptions (a bad value or file: ValueError, the rest:
// RuntimeError), the GIL released while a trainer runs. The estimator logic (epochs, learning
// rate schedules, early stopping, scikit-learn's attributes) is Python, in python/mlptrain/.
#include <nanobind/nanobind.h>  // module, classes, exceptions, GIL
#include <nanobind/ndarray.h>   // NumPy arrays in and out
#include <nanobind/stl/map.h>   // metadata dicts
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "host/base/error.hpp"
#include "host/config/kernel_options.hpp"
#include "host/config/optimizer.hpp"
#include "host/config/schedule.hpp"
#include "host/config/train_config.hpp"
#include "host/cpu/gemm_library.hpp"
#include "host/cpu/thread_policy.hpp"
#include "host/data/dataset.hpp"
#include "host/data/idx.hpp"
#include "host/device/device.hpp"
#include "host/formats/safetensors.hpp"
#include "host/model/model.hpp"
#include "host/sweep/memory.hpp"
#include "host/train/trainer.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

template <class T>
using Array = nb::ndarray<T, nb::numpy, nb::c_contig, nb::device::cpu>;

// A NumPy array that owns a copy of `values`, shaped `shape`.
template <class T>
Array<T> to_numpy(std::vector<T> values, std::vector<size_t> shape) {
    auto* owner = new std::vector<T>(std::move(values));
    nb::capsule free_owner(owner, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
    return Array<T>(owner->data(), shape.size(), shape.data(), free_owner);
}

template <class T>
std::vector<T> to_vector(const Array<const T>& a) {
    return std::vector<T>(a.data(), a.data() + a.size());
}

mlp::OptimizerConfig optimizer_from(const nb::dict& d) {
    mlp::OptimizerConfig o;
    for (auto [key, value] : d) {
        const std::string k = nb::cast<std::string>(key);
        if (k == "kind") {
            o.kind = mlp::parse_optimizer_kind(nb::cast<std::string>(value));
        } else if (k == "momentum") {
            o.momentum = nb::cast<double>(value);
        } else if (k == "nesterov") {
            o.nesterov = nb::cast<bool>(value);
        } else if (k == "weight_decay") {
            o.weight_decay = nb::cast<double>(value);
        } else if (k == "beta1") {
            o.beta1 = nb::cast<double>(value);
        } else if (k == "beta2") {
            o.beta2 = nb::cast<double>(value);
        } else if (k == "eps") {
            o.eps = nb::cast<double>(value);
        } else if (k == "l2_penalty") {
            o.l2_penalty = nb::cast<double>(value);
        } else if (k == "eps_before_bias_correction") {
            o.eps_before_bias_correction = nb::cast<bool>(value);
        } else {
            throw mlp::Error("unknown optimizer setting '" + k + "'");
        }
    }
    mlp::check_optimizer_config(o);
    return o;
}

nb::dict result_dict(const mlp::EpochResult& r) {
    nb::dict d;
    d["n_samples"] = r.n_samples;
    d["loss"] = r.loss;
    d["accuracy"] = r.accuracy;
    d["grad_norm"] = r.grad_norm;
    d["first_bad_step"] = r.first_bad_step;
    d["skipped_steps"] = r.skipped_steps;
    return d;
}

// A batch of models of one shape on one device, over one training set held on that device.
class PyTrainer {
public:
    PyTrainer(Array<const float> x, Array<const uint8_t> y, int image_rows, int image_cols,
              std::vector<int64_t> hidden, int64_t n_classes, const std::string& activation,
              const std::vector<nb::dict>& optimizers, int64_t batch_size,
              const std::string& device, const std::string& kernels, const std::string& precision,
              int threads, std::optional<bool> use_graph) {
        if (x.ndim() != 2 || y.ndim() != 1 || int64_t(x.shape(0)) != int64_t(y.shape(0))) {
            throw mlp::Error("X must be (n_samples, n_features) and y (n_samples,)");
        }
        const int64_t n = int64_t(x.shape(0));
        // The loss reads logits[label]: a label past the classes would read outside them.
        for (int64_t i = 0; i < n; ++i) {
            if (int64_t(y.data()[i]) >= n_classes) {
                throw mlp::UsageError("y", "label " + std::to_string(int(y.data()[i])) +
                                               " of sample " + std::to_string(i) +
                                               " is not below the class count " +
                                               std::to_string(n_classes));
            }
        }
        if (int64_t(image_rows) * image_cols != int64_t(x.shape(1))) {
            throw mlp::Error("image shape " + std::to_string(image_rows) + " x " +
                             std::to_string(image_cols) + " does not hold " +
                             std::to_string(x.shape(1)) + " features");
        }
        // Needed only while the trainer is built: the engine copies it to the device.
        mlp::Dataset data;
        data.name = "numpy";
        data.n_classes = int(n_classes);
        // Borrowed: the array outlives the trainer's construction, which copies it once.
        data.train = mlp::make_float_split_view(x.data(), to_vector(y), n, image_rows, image_cols);
        data.test.images.n_rows = image_rows;
        data.test.images.n_cols = image_cols;
        shape_ = mlp::ModelShape(int64_t(x.shape(1)), hidden, n_classes);
        mlp::TrainerOptions options;
        options.batch_size = batch_size;
        options.kernels = mlp::parse_kernel_path(kernels);
        options.precision = mlp::parse_precision(precision);
        options.activation = mlp::parse_activation(activation);
        options.cpu_threads = threads;
        std::vector<mlp::OptimizerConfig> configs;
        for (const nb::dict& d : optimizers) configs.push_back(optimizer_from(d));
        if (configs.empty()) throw mlp::Error("a trainer needs at least one model");
        options.optimizer = configs.front();
        const mlp::DeviceChoice choice = mlp::choose_device(device);
        // The CPU runs steps one by one, so that Ctrl-C stops a fit within a step; a GPU
        // replays a recorded epoch, and stops between epochs.
        options.use_graph = use_graph.value_or(choice.cuda);
        {
            nb::gil_scoped_release unlocked;
            trainer_ = mlp::make_trainer(choice, shape_, data, options, configs);
        }
    }

    int64_t n_models() const { return trainer_->n_models(); }
    int64_t steps_per_epoch() const { return trainer_->steps_per_epoch(); }
    std::string device_name() const { return trainer_->device_name(); }

    // One epoch of the models that have a plan: (k, order, learning rate per step, shifts or
    // None). Between steps (where the backend runs them one by one) Python's signal handlers
    // run, so Ctrl-C raises KeyboardInterrupt there.
    std::vector<nb::dict> train_epoch(
        const std::vector<std::tuple<int64_t, Array<const int32_t>, Array<const double>,
                                     std::optional<Array<const int8_t>>>>& plans) {
        for (const auto& [k, perm, lr, shifts] : plans) {
            mlp::EpochPlan plan;
            plan.perm = to_vector(perm);
            plan.lr = to_vector(lr);
            if (shifts) plan.shifts = to_vector(*shifts);
            trainer_->plan_model(k, plan);
        }
        std::vector<mlp::EpochResult> results;
        {
            nb::gil_scoped_release unlocked;
            results = trainer_->train_models([](int64_t, int64_t) {
                nb::gil_scoped_acquire locked;
                if (PyErr_CheckSignals() != 0) throw nb::python_error();
            });
        }
        std::vector<nb::dict> out;
        for (const mlp::EpochResult& r : results) out.push_back(result_dict(r));
        return out;
    }

    Array<float> params(int64_t k) {
        return to_numpy(trainer_->params(k), {size_t(shape_.n_params())});
    }
    void set_params(int64_t k, Array<const float> p) { trainer_->set_params(k, to_vector(p)); }

    std::pair<int64_t, std::vector<Array<float>>> optimizer_state(int64_t k) {
        mlp::OptimizerState s = trainer_->optimizer_state(k);
        std::vector<Array<float>> buffers;
        for (auto& b : s.buffers) {
            const size_t n = b.size();  // before the move: argument order is unspecified
            buffers.push_back(to_numpy(std::move(b), {n}));
        }
        return {s.step, buffers};
    }
    void set_optimizer_state(int64_t k, int64_t step, const std::vector<Array<const float>>& bufs) {
        mlp::OptimizerState s;
        s.step = step;
        for (const auto& b : bufs) s.buffers.push_back(to_vector(b));
        trainer_->set_optimizer_state(k, s);
    }

private:
    mlp::ModelShape shape_;
    std::unique_ptr<mlp::Trainer> trainer_;
};

// The sweep's memory estimate (host/sweep/memory.hpp) for n_models models that train together
// on n_train float32 samples, and what the device has: the GPU's memory, or the host memory
// available now.
nb::dict batch_memory(std::vector<int64_t> hidden, int64_t n_features, int64_t n_classes,
                      const nb::dict& optimizer, int64_t batch_size, const std::string& kernels,
                      const std::string& precision, int64_t n_train, int64_t n_models,
                      const std::string& device) {
    mlp::TrainConfig config;
    config.hidden = hidden;
    config.optimizer = optimizer_from(optimizer);
    config.batch_size = batch_size;
    config.kernels = mlp::parse_kernel_path(kernels);
    config.precision = mlp::parse_precision(precision);
    const mlp::ModelShape shape(n_features, hidden, n_classes);
    const mlp::DataSize size{n_train, 0, n_features, 4};
    const mlp::DeviceChoice choice = mlp::choose_device(device);
    nb::dict d;
    d["per_model"] = mlp::model_bytes(shape, config, size);
    d["fixed"] = mlp::batch_fixed_bytes(shape, config, size, n_models, choice.cuda);
    d["available"] = choice.cuda ? choice.gpu.total_bytes : mlp::available_host_bytes();
    d["where"] = choice.cuda ? "GPU memory" : "host memory";
    return d;
}

nb::list devices() {
    nb::list out;
    nb::dict cpu;
    cpu["name"] = "cpu";
    cpu["kind"] = "cpu";
    cpu["usable"] = true;
    try {
        cpu["description"] = "CPU, " + std::to_string(mlp::apply_cpu_threads(0)) +
                             " threads, GEMMs: " + mlp::gemm_library().description();
        cpu["reason"] = "";
    } catch (const mlp::Error& e) {
        cpu["usable"] = false;
        cpu["description"] = "CPU";
        cpu["reason"] = e.what();
    }
    out.append(cpu);
    for (int i = 0;; ++i) {
        const mlp::CudaDeviceInfo info = mlp::probe_cuda_device(i);
        if (!info.usable && i > 0) break;  // past the last GPU
        nb::dict gpu;
        gpu["name"] = "cuda:" + std::to_string(i);
        gpu["kind"] = "cuda";
        gpu["usable"] = info.usable;
        gpu["description"] = info.usable ? info.describe() : std::string("CUDA");
        gpu["reason"] = info.reason;
        out.append(gpu);
        if (!info.usable) break;
    }
    return out;
}

Array<uint8_t> load_images(const std::string& path, uint64_t limit_bytes) {
    mlp::IdxImages images = mlp::read_idx_images(path, limit_bytes);
    const std::vector<size_t> shape{size_t(images.n_items), size_t(images.n_rows),
                                    size_t(images.n_cols)};
    return to_numpy(std::move(images.pixels), shape);
}

Array<uint8_t> load_labels(const std::string& path, uint64_t limit_bytes) {
    mlp::IdxLabels labels = mlp::read_idx_labels(path, limit_bytes);
    const size_t n = size_t(labels.n_items);
    return to_numpy(std::move(labels.labels), {n});
}

// The four files of a folder, with load_dataset's cross-file checks.
nb::tuple load_folder(const std::string& dir, uint64_t limit_bytes) {
    mlp::LoadOptions options;
    options.limit_bytes = limit_bytes;
    options.classes_from = "the labels";
    mlp::Dataset d = mlp::load_dataset(dir, dir, options);
    auto images = [](mlp::Split& s) {
        const std::vector<size_t> shape{size_t(s.images.n_items), size_t(s.images.n_rows),
                                        size_t(s.images.n_cols)};
        return to_numpy(std::move(s.images.pixels), shape);
    };
    auto labels = [](mlp::Split& s) {
        const size_t n = size_t(s.labels.n_items);
        return to_numpy(std::move(s.labels.labels), {n});
    };
    return nb::make_tuple(images(d.train), labels(d.train), images(d.test), labels(d.test));
}

void save_model(const std::string& path, const std::vector<int64_t>& sizes,
                Array<const float> params, const std::map<std::string, std::string>& metadata) {
    const mlp::ModelShape shape(sizes);
    std::vector<float> p = to_vector(params);
    if (int64_t(p.size()) != shape.n_params()) {
        throw mlp::Error("model " + shape.to_string() + " needs " +
                         std::to_string(shape.n_params()) + " parameters, got " +
                         std::to_string(p.size()));
    }
    std::map<std::string, std::string> meta = metadata;
    mlp::activation_of(meta, path);  // a name the readers know
    mlp::save_model(path, shape, p, meta);
}

nb::tuple load_model(const std::string& path) {
    mlp::ModelFile m = mlp::load_model(path);
    mlp::activation_of(m.metadata, path);
    const size_t n = m.params.size();
    return nb::make_tuple(m.shape.sizes(), to_numpy(std::move(m.params), {n}), m.metadata);
}

// The learning rate of every step of one epoch under one of the command line's schedules.
Array<double> schedule_rates(const std::string& kind, double base_lr, int64_t epoch,
                             int64_t steps_per_epoch, int64_t total_epochs, double warmup_pct,
                             double gamma, int64_t step_size) {
    mlp::ScheduleConfig schedule;
    schedule.kind = mlp::parse_schedule_kind(kind);
    schedule.warmup_pct = warmup_pct;
    schedule.gamma = gamma;
    schedule.step_size = step_size;
    std::vector<double> lr;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
        lr.push_back(mlp::lr_at(schedule, base_lr, epoch, s, steps_per_epoch, total_epochs));
    }
    const size_t n = lr.size();
    return to_numpy(std::move(lr), {n});
}

}  // namespace

NB_MODULE(_core, m) {
    m.doc() = "mlptrain's C++ core (see the mlptrain package)";
    m.attr("__version__") = MLPTRAIN_VERSION;
    m.attr("built_with_cuda") = mlp::built_with_cuda();

    // A bad value or file is the caller's: ValueError; everything else RuntimeError.
    nb::register_exception_translator([](const std::exception_ptr& p, void*) {
        try {
            std::rethrow_exception(p);
        } catch (const mlp::UsageError& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        } catch (const mlp::DataError& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        } catch (const mlp::Error& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
        }
    });

    nb::class_<PyTrainer>(m, "Trainer")
        .def(nb::init<Array<const float>, Array<const uint8_t>, int, int, std::vector<int64_t>,
                      int64_t, const std::string&, const std::vector<nb::dict>&, int64_t,
                      const std::string&, const std::string&, const std::string&, int,
                      std::optional<bool>>(),
             "x"_a, "y"_a, "image_rows"_a, "image_cols"_a, "hidden"_a, "n_classes"_a,
             "activation"_a, "optimizers"_a, "batch_size"_a, "device"_a, "kernels"_a, "precision"_a,
             "threads"_a, "use_graph"_a = nb::none())
        .def_prop_ro("n_models", &PyTrainer::n_models)
        .def_prop_ro("steps_per_epoch", &PyTrainer::steps_per_epoch)
        .def_prop_ro("device_name", &PyTrainer::device_name)
        .def("train_epoch", &PyTrainer::train_epoch, "plans"_a)
        .def("params", &PyTrainer::params, "k"_a = 0)
        .def("set_params", &PyTrainer::set_params, "k"_a, "params"_a)
        .def("optimizer_state", &PyTrainer::optimizer_state, "k"_a = 0)
        .def("set_optimizer_state", &PyTrainer::set_optimizer_state, "k"_a, "step"_a, "buffers"_a);

    m.def("devices", &devices);
    m.def("format_bytes", &mlp::format_bytes, "bytes"_a);
    m.def("batch_memory", &batch_memory, "hidden"_a, "n_features"_a, "n_classes"_a, "optimizer"_a,
          "batch_size"_a, "kernels"_a, "precision"_a, "n_train"_a, "n_models"_a, "device"_a);
    m.def("schedule_rates", &schedule_rates, "kind"_a, "base_lr"_a, "epoch"_a, "steps_per_epoch"_a,
          "total_epochs"_a, "warmup_pct"_a = 0.3, "gamma"_a = 0.1, "step_size"_a = 1);
    m.def("load_idx_images", &load_images, "path"_a, "limit_bytes"_a);
    m.def("load_idx_labels", &load_labels, "path"_a, "limit_bytes"_a);
    m.def("load_idx_folder", &load_folder, "path"_a, "limit_bytes"_a);
    m.def("has_dataset_files", [](const std::string& dir) { return mlp::has_dataset_files(dir); });
    m.def("save_model", &save_model, "path"_a, "sizes"_a, "params"_a, "metadata"_a);
    m.def("load_model", &load_model, "path"_a);
}
