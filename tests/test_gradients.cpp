// The analytic backward pass of the production step (float, CPU backend)
// against central finite differences of an independent double-precision
// forward pass.
#include <gtest/gtest.h>

#include <cmath>

#include "host/train/trainer.hpp"
#include "reference_mlp.hpp"
#include "synthetic.hpp"

namespace mlp {
namespace {

TEST(Gradients, MatchFiniteDifferencesOfTheWholeNetwork) {
    const Dataset data = test::synthetic_dataset(40, 10, 3, 4, 4);
    const ModelShape shape({12, 9, 7, 4});
    const std::vector<int32_t> ids = {3, 17, 22, 5, 39, 0, 11};

    // Biases away from zero keep every ReLU input clear of the kink, where a
    // finite difference would straddle two slopes; the check below proves it.
    const std::vector<float> params = test::params_with_biases_off_zero(shape, 11);
    test::ReferenceMlp ref{shape, std::vector<double>(params.begin(), params.end())};
    const double h = 1e-6;
    ASSERT_GT(ref.min_abs_hidden_z(data.train, ids), 1e3 * h)
        << "a ReLU input is too close to 0 for finite differences";
    const std::vector<double> numeric = ref.numeric_gradient(data.train, ids, h);

    TrainerOptions options;
    options.batch_size = 8;
    auto trainer = make_cpu_trainer(shape, data, options);
    trainer->set_params(params);
    double loss = 0.0;
    const std::vector<float> analytic = trainer->gradients(ids, &loss);

    EXPECT_NEAR(loss, ref.mean_loss(data.train, ids), 1e-5);
    // The step computes in float, so agreement is limited by float rounding
    // (about 1e-7 relative per operation), far below a wrong term's error.
    EXPECT_LT(test::normalised_error(analytic, numeric), 1e-4);
    // The double reference's own backprop agrees with its finite differences
    // to double precision, which shows the finite differences are sound.
    EXPECT_LT(test::normalised_error(ref.gradient(data.train, ids), numeric), 1e-7);
    for (size_t i = 0; i < params.size(); ++i) {
        ASSERT_NEAR(analytic[i], numeric[i], 1e-4 + 1e-3 * std::abs(numeric[i])) << "param " << i;
    }
}

}  // namespace
}  // namespace mlp
