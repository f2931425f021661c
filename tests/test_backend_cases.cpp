// The case table of tests/backend_cases.hpp, CPU backend against plain loops,
// so the table the GPU tests and kernel benchmarks use runs on every machine.
#include <gtest/gtest.h>

#include <set>

#include "backend_cases.hpp"

namespace mlp {
namespace {

TEST(BackendCases, CpuBackendMatchesPlainLoopsOnEveryCase) {
    for (const cases::CaseShape& at : cases::check_shapes()) {
        CpuBackend be;
        cases::NaiveBackend ref;
        const auto table = cases::step_cases<CpuBackend, cases::NaiveBackend>(at);
        ASSERT_FALSE(table.empty());
        for (const auto& c : table) {
            const double err = cases::check_case(c, be, ref);
            EXPECT_GE(err, 0.0) << c.info.name << ": an output is missing or not finite";
            EXPECT_LE(err, c.info.tolerance) << c.info.name;
        }
    }
}

// Each launch of a training step has a case, and the names are unique, so a
// benchmark or a GPU test filter finds exactly one per shape.
TEST(BackendCases, NamesAreUniqueAndCoverTheStep) {
    const auto table =
        cases::step_cases<CpuBackend, cases::NaiveBackend>(cases::benchmark_shapes()[0]);
    std::set<std::string> names;
    for (const auto& c : table) EXPECT_TRUE(names.insert(c.info.name).second) << c.info.name;
    for (const char* name :
         {"gather/b64", "bias_relu/l0/b64", "bias/l2/b64", "gemm_fwd/l0/b64/128x64x784",
          "gemm_dW/l1/b64/128x64x64", "gemm_dX/l1/b64/128x64x64", "bias_grad/l2/b64",
          "relu_backward/l1/b64", "softmax_xent/b64", "sgd_update/b64", "adamw_update/b64",
          "grad_norm/b64"}) {
        EXPECT_EQ(names.count(name), 1u) << name;
    }
}

// A wrong result must show as an error above every tolerance, and a NaN as
// unusable, or the check would pass anything.
TEST(BackendCases, ErrorCheckSeesAWrongValueAndANan) {
    EXPECT_EQ(cases::normalised_error({1.0f, 2.0f}, {1.0f, 2.0f}), 0.0);
    EXPECT_GT(cases::normalised_error({1.0f, 2.0f}, {1.0f, 2.001f}), 1e-4);
    EXPECT_LT(cases::normalised_error({1.0f, 2.0f}, {1.0f, NAN}), 0.0);
    EXPECT_LT(cases::normalised_error({1.0f}, {1.0f, 2.0f}), 0.0);
    EXPECT_LT(cases::worst_error({{1.0f}, {2.0f}}, {{1.0f}}), 0.0);
}

}  // namespace
}  // namespace mlp
