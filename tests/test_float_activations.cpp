// What the Python package added to the core: float32 features (tabular data, unscaled; images
// scaled by the caller), the hidden activations tanh, logistic and identity beside ReLU, and
// scikit-learn's L2 penalty (alpha) on the weights alone.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "host/base/error.hpp"
#include "host/config/optimizer.hpp"
#include "host/model/model.hpp"
#include "host/model/predict.hpp"
#include "host/train/trainer.hpp"
#include "ops/activation.hpp"
#include "reference_mlp.hpp"
#include "synthetic.hpp"

namespace mlp {
namespace {

// The same images as float32 features, pixel * (1/255) in float as the byte gather computes it.
Dataset as_floats(const Dataset& d) {
    Dataset f = d;
    for (Split* s : {&f.train, &f.test}) {
        std::vector<float> x;
        for (uint8_t p : s->images.pixels) x.push_back(float(p) * (1.0f / 255.0f));
        *s = make_float_split(std::move(x), s->labels.labels, s->size(), s->images.n_rows,
                              s->images.n_cols);
    }
    return f;
}

// A tabular data set: n samples of `cols` features on a wide, signed range (no scaling
// applied), three classes separated by the sign of a feature sum.
Dataset tabular(int64_t n, int cols) {
    Dataset d;
    d.name = "tabular";
    d.n_classes = 3;
    Rng rng(7, 1);
    std::vector<float> x;
    std::vector<uint8_t> y;
    for (int64_t i = 0; i < n; ++i) {
        float sum = 0.0f;
        for (int c = 0; c < cols; ++c) {
            const float v = float(int(rng.below(2001)) - 1000) / 250.0f;  // -4 .. 4
            x.push_back(v);
            sum += c % 2 ? v : -v;
        }
        y.push_back(uint8_t(sum < -1.0f ? 0 : sum > 1.0f ? 2 : 1));
    }
    d.train = make_float_split(std::move(x), std::move(y), n, 1, cols);
    d.test.images.n_rows = 1;
    d.test.images.n_cols = cols;
    return d;
}

std::vector<float> train_two_epochs(const Dataset& data, const ModelShape& shape,
                                    bool with_shifts) {
    TrainerOptions options;
    options.batch_size = 16;
    options.optimizer.momentum = 0.9;
    auto trainer = make_cpu_trainer(shape, data, options);
    trainer->set_params(init_params(shape, 3));
    for (int epoch = 0; epoch < 2; ++epoch) {
        EpochPlan plan;
        for (int32_t i = 0; i < int32_t(data.train.size()); ++i) {
            plan.perm.push_back(int32_t((i * 7 + epoch) % data.train.size()));
        }
        plan.lr.assign(size_t(trainer->steps_per_epoch()), 0.05);
        if (with_shifts) {
            for (int64_t i = 0; i < 2 * data.train.size(); ++i)
                plan.shifts.push_back(int8_t(i % 3 - 1));
        }
        trainer->train_epoch(plan);
    }
    return trainer->params();
}

TEST(FloatFeatures, TrainBitForBitLikeTheScaledBytes) {
    const Dataset bytes = test::synthetic_dataset(61, 10, 4, 5, 3);
    const Dataset floats = as_floats(bytes);
    ASSERT_TRUE(floats.train.has_float_features());
    const ModelShape shape({20, 9, 3});
    for (bool shifts : {false, true}) {
        const std::vector<float> a = train_two_epochs(bytes, shape, shifts);
        const std::vector<float> b = train_two_epochs(floats, shape, shifts);
        ASSERT_EQ(a.size(), b.size());
        for (size_t i = 0; i < a.size(); ++i) {
            ASSERT_EQ(a[i], b[i]) << "parameter " << i << (shifts ? " with shifts" : "");
        }
        EXPECT_NE(a, init_params(shape, 3));
    }
}

TEST(FloatFeatures, ABorrowedSplitTrainsAsAnOwnedOne) {
    const Dataset owned = as_floats(test::synthetic_dataset(40, 10, 4, 5, 3));
    Dataset view = owned;
    view.train =
        make_float_split_view(owned.train.features.data(), owned.train.labels.labels, 40, 4, 5);
    EXPECT_TRUE(view.train.features.empty());
    const ModelShape shape({20, 6, 3});
    EXPECT_EQ(train_two_epochs(view, shape, false), train_two_epochs(owned, shape, false));
    EXPECT_THROW(make_float_split_view(nullptr, std::vector<uint8_t>(3), 3, 1, 1), Error);
}

TEST(FloatFeatures, MakeFloatSplitRefusesSizesThatDisagree) {
    EXPECT_THROW(make_float_split(std::vector<float>(10), std::vector<uint8_t>(3), 3, 1, 3), Error);
    EXPECT_THROW(make_float_split(std::vector<float>(9), std::vector<uint8_t>(2), 3, 1, 3), Error);
    EXPECT_THROW(make_float_split({}, {}, 0, 1, 3), Error);
    const Split s = make_float_split(std::vector<float>(9, 2.5f), std::vector<uint8_t>(3), 3, 1, 3);
    EXPECT_EQ(s.size(), 3);
    EXPECT_EQ(s.images.n_features(), 3);
    EXPECT_TRUE(s.images.pixels.empty());
}

// Every activation's gradient on unscaled tabular features against central differences of the
// double-precision reference.
TEST(Activations, GradientsMatchFiniteDifferences) {
    const Dataset data = tabular(30, 6);
    const ModelShape shape({6, 8, 5, 3});
    const std::vector<int32_t> ids = {3, 17, 22, 5, 29, 0, 11};
    for (Activation act :
         {Activation::relu, Activation::tanh, Activation::logistic, Activation::identity}) {
        SCOPED_TRACE(activation_name(act));
        const std::vector<float> params = test::params_with_biases_off_zero(shape, 11);
        test::ReferenceMlp ref{shape, std::vector<double>(params.begin(), params.end()), act};
        const double h = 1e-6;
        if (act == Activation::relu) {
            ASSERT_GT(ref.min_abs_hidden_z(data.train, ids), 1e3 * h)
                << "a ReLU input is too close to 0";
        }
        const std::vector<double> numeric = ref.numeric_gradient(data.train, ids, h);
        TrainerOptions options;
        options.batch_size = 8;
        options.activation = act;
        auto trainer = make_cpu_trainer(shape, data, options);
        trainer->set_params(params);
        double loss = 0.0;
        const std::vector<float> analytic = trainer->gradients(ids, &loss);
        EXPECT_NEAR(loss, ref.mean_loss(data.train, ids), 1e-5);
        EXPECT_LT(test::normalised_error(analytic, numeric), 1e-4);
        EXPECT_LT(test::normalised_error(analytic, ref.gradient(data.train, ids)), 1e-5);
    }
}

TEST(Activations, FunctorsFollowTheirFormulas) {
    for (double v : {-3.0, -0.5, 0.0, 0.25, 2.0}) {
        EXPECT_EQ(activate(Activation::relu, v), v > 0 ? v : 0.0);
        EXPECT_DOUBLE_EQ(activate(Activation::tanh, v), std::tanh(v));
        EXPECT_DOUBLE_EQ(activate(Activation::logistic, v), 1.0 / (1.0 + std::exp(-v)));
        EXPECT_EQ(activate(Activation::identity, v), v);
        const double g = 0.7;
        const double t = std::tanh(v), s = 1.0 / (1.0 + std::exp(-v));
        EXPECT_DOUBLE_EQ(activation_backward(Activation::tanh, t, g), g * (1 - t * t));
        EXPECT_DOUBLE_EQ(activation_backward(Activation::logistic, s, g), g * s * (1 - s));
        EXPECT_EQ(activation_backward(Activation::identity, v, g), g);
        EXPECT_EQ(activation_backward(Activation::relu, std::max(v, 0.0), g), v > 0 ? g : 0.0);
    }
    // logistic saturates without NaN
    EXPECT_EQ(activate(Activation::logistic, -1000.0f), 0.0f);
    EXPECT_EQ(activate(Activation::logistic, 1000.0f), 1.0f);
    for (size_t i = 0; i < std::size(k_activation_names); ++i) {
        EXPECT_EQ(parse_activation(k_activation_names[i]), Activation(i));
        EXPECT_STREQ(activation_name(Activation(i)), k_activation_names[i]);
    }
    EXPECT_THROW(parse_activation("softplus"), Error);
}

TEST(Activations, FusedKernelsRefuseAnythingButRelu) {
    const Dataset data = tabular(20, 4);
    TrainerOptions options;
    options.kernels = KernelPath::fused;
    options.activation = Activation::tanh;
    EXPECT_THROW(make_cpu_trainer(ModelShape({4, 5, 3}), data, options), UsageError);
}

TEST(Activations, PredictorReadsTheModelsActivation) {
    const ModelShape shape({20, 6, 3});
    const std::vector<float> params = init_params(shape, 5);
    const Dataset data = test::synthetic_dataset(4, 2, 4, 5, 3);
    for (Activation act :
         {Activation::relu, Activation::tanh, Activation::logistic, Activation::identity}) {
        ModelFile file{shape, params, {{"activation", activation_name(act)}}};
        const Predictor predictor(file, "m.safetensors");
        test::ReferenceMlp ref{shape, std::vector<double>(params.begin(), params.end()), act};
        const std::vector<double> p = predictor.probabilities(data.train.images.pixels.data());
        const auto logits = ref.forward(test::ReferenceMlp::input(data.train, 0)).back();
        const double m = *std::max_element(logits.begin(), logits.end());
        double sum = 0.0;
        for (double v : logits) sum += std::exp(v - m);
        for (size_t c = 0; c < p.size(); ++c) {
            EXPECT_NEAR(p[c], std::exp(logits[c] - m) / sum, 1e-12) << activation_name(act);
        }
    }
    ModelFile bad{shape, params, {{"activation", "softplus"}}};
    try {
        Predictor(bad, "m.safetensors");
        FAIL() << "an unknown activation loaded";
    } catch (const DataError& e) {
        EXPECT_NE(std::string(e.what()).find("m.safetensors"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("softplus"), std::string::npos);
    }
}

// scikit-learn's alpha: one plain SGD step moves a weight by lr * (g + alpha * w / batch) and a
// bias by lr * g, g the gradient of the batch's mean loss.
TEST(L2Penalty, IsScikitLearnsAlphaOnTheWeightsAlone) {
    const Dataset data = tabular(12, 5);
    const ModelShape shape({5, 7, 3});
    const std::vector<float> start = init_params(shape, 9);
    const std::vector<int32_t> ids = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    const double lr = 0.5, alpha = 0.3;
    TrainerOptions options;
    options.batch_size = 12;
    options.optimizer.l2_penalty = alpha;
    auto trainer = make_cpu_trainer(shape, data, options);
    trainer->set_params(start);
    const std::vector<float> g = trainer->gradients(ids, nullptr);
    trainer->set_params(start);
    EpochPlan plan;
    plan.perm = ids;
    plan.lr = {lr};
    trainer->train_epoch(plan);
    const std::vector<float> after = trainer->params();
    for (int l = 0; l < shape.n_layers(); ++l) {
        for (int64_t i = 0; i < shape.n_in(l) * shape.n_out(l); ++i) {
            const size_t at = size_t(shape.weight_offset(l) + i);
            EXPECT_NEAR(after[at], start[at] - lr * (g[at] + alpha * start[at] / 12.0), 1e-6);
        }
        for (int64_t o = 0; o < shape.n_out(l); ++o) {
            const size_t at = size_t(shape.bias_offset(l) + o);
            EXPECT_NEAR(after[at], start[at] - lr * g[at], 1e-6);
        }
    }
    OptimizerConfig negative;
    negative.l2_penalty = -1.0;
    EXPECT_THROW(check_optimizer_config(negative), UsageError);
}

// scikit-learn's Adam: lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps), through the
// same update functor with the correction moved into the step size.
TEST(AdamEpsilon, BeforeTheBiasCorrectionIsScikitLearnsUpdate) {
    OptimizerConfig o;
    o.kind = OptimizerKind::adam;
    o.beta1 = 0.9;
    o.beta2 = 0.99;
    o.eps_before_bias_correction = true;
    const std::vector<OptimizerStep> steps = optimizer_steps(o, {0.01, 0.02}, 4);
    for (int k = 0; k < 2; ++k) {
        const double t = 5 + k, lr = k == 0 ? 0.01 : 0.02;
        EXPECT_FLOAT_EQ(steps[size_t(k)].step_size,
                        float(lr * std::sqrt(1 - std::pow(0.99, t)) / (1 - std::pow(0.9, t))));
        EXPECT_EQ(steps[size_t(k)].bias_correction2_sqrt, 1.0f);
    }
    o.eps_before_bias_correction = false;
    const std::vector<OptimizerStep> torch = optimizer_steps(o, {0.01}, 4);
    EXPECT_FLOAT_EQ(torch[0].step_size, float(0.01 / (1 - std::pow(0.9, 5))));
    EXPECT_FLOAT_EQ(torch[0].bias_correction2_sqrt, float(std::sqrt(1 - std::pow(0.99, 5))));
}

// The binding hands the engine orders from Python: one that names a sample outside the
// training set is refused before anything is gathered.
TEST(EpochPlan, RefusesOrdersOutsideTheTrainingSet) {
    const Dataset data = tabular(10, 3);
    auto trainer = make_cpu_trainer(ModelShape({3, 4, 3}), data, TrainerOptions{});
    EpochPlan plan;
    for (int32_t i = 0; i < 10; ++i) plan.perm.push_back(i);
    plan.lr.assign(size_t(trainer->steps_per_epoch()), 0.1);
    for (int32_t bad : {10, -1}) {
        plan.perm[4] = bad;
        try {
            trainer->train_epoch(plan);
            FAIL() << bad << " was accepted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("entry 4 is " + std::to_string(bad)),
                      std::string::npos)
                << e.what();
        }
    }
}

}  // namespace
}  // namespace mlp
