// The CPU backend's GEMM library (host/cpu/gemm_library.hpp): its kernel set is
// chosen from the CPU's features, a CPU with vector units gets vector kernels
// (so a fall back to a generic kernel set fails here instead of slowing every
// run), and a run whose library uses narrower kernels than the CPU has says so
// once, with the fix.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "cli_runner.hpp"
#include "host/cpu/cpu_backend.hpp"
#include "host/cpu/gemm_library.hpp"
#include "host/cpu/thread_policy.hpp"
#include "idx_fixtures.hpp"
#include "synthetic.hpp"
#include "temp_dir.hpp"

namespace mlp {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(GemmLibrary, KernelSetFollowsFeaturesNotModels) {
    EXPECT_EQ(openblas_core_for({VectorIsa::avx512, false}), "SkylakeX");
    EXPECT_EQ(openblas_core_for({VectorIsa::avx512, true}), "SkylakeX");
    EXPECT_EQ(openblas_core_for({VectorIsa::avx2, false}), "Haswell");
    EXPECT_EQ(openblas_core_for({VectorIsa::avx2, true}), "Zen");
    // Without AVX2 the library's own choice stands.
    EXPECT_EQ(openblas_core_for({VectorIsa::avx, false}), "");
    EXPECT_EQ(openblas_core_for({VectorIsa::sse, true}), "");
}

TEST(GemmLibrary, KernelSetNamesMapToTheirVectorWidth) {
    EXPECT_EQ(kernel_set_isa("Prescott"), VectorIsa::sse);
    EXPECT_EQ(kernel_set_isa("Nehalem"), VectorIsa::sse);
    EXPECT_EQ(kernel_set_isa("Sandybridge"), VectorIsa::avx);
    EXPECT_EQ(kernel_set_isa("Haswell"), VectorIsa::avx2);
    EXPECT_EQ(kernel_set_isa("ZEN"), VectorIsa::avx2);
    EXPECT_EQ(kernel_set_isa("SkylakeX"), VectorIsa::avx512);
    EXPECT_EQ(kernel_set_isa("zen3"), VectorIsa::avx2);
    EXPECT_EQ(kernel_set_isa("skx"), VectorIsa::avx512);
    EXPECT_EQ(kernel_set_isa("generic"), VectorIsa::sse);
    EXPECT_EQ(kernel_set_isa("avx2"), VectorIsa::avx2);  // oneDNN's
    EXPECT_EQ(kernel_set_isa("avx512_core_amx"), VectorIsa::avx512);
    EXPECT_EQ(kernel_set_isa("sse41"), VectorIsa::sse);
    EXPECT_EQ(kernel_set_isa(""), VectorIsa::sse);
}

std::string run_binary(const std::string& env, const std::string& args);

// The regression this guards: a GEMM library that falls back to SSE kernels on a CPU it
// does not know. Whatever the CPU, its widest vector units must be the kernels'.
TEST(GemmLibrary, RunsTheCpusVectorKernels) {
    for (const char* v :
         {"MLPTRAIN_BLAS", "OPENBLAS_CORETYPE", "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA"}) {
        if (std::getenv(v)) GTEST_SKIP() << v << " is set: the kernels are the user's";
    }
    const CpuFeatures cpu = cpu_features();
    if (cpu.isa < VectorIsa::avx2) {
        GTEST_SKIP() << "this CPU has " << vector_isa_name(cpu.isa) << ", no AVX2";
    }
    const GemmLibrary& g = gemm_library();
    EXPECT_EQ(g.kernel_isa, cpu.isa)
        << g.name << " runs " << g.kernels << " on a CPU with " << vector_isa_name(cpu.isa);
    EXPECT_THAT(g.chosen_by, HasSubstr("CPU"));
    EXPECT_EQ(g.warning, "");
    if (g.name.rfind("OpenBLAS", 0) == 0) {
        EXPECT_EQ(g.kernels, openblas_core_for(cpu));
    } else {
        EXPECT_THAT(g.name, ::testing::StartsWith("oneDNN"));
    }
}

// The fallback where oneDNN is missing: OpenBLAS with the kernel set the features ask for.
TEST(GemmLibrary, OpenBlasGetsTheKernelsTheFeaturesAskFor) {
    const CpuFeatures cpu = cpu_features();
    if (cpu.isa < VectorIsa::avx2) GTEST_SKIP() << "this CPU has no AVX2";
    const std::string version =
        run_binary("env -u OPENBLAS_CORETYPE MLPTRAIN_BLAS=libopenblas.so.0", "--version");
    EXPECT_THAT(version, HasSubstr("OpenBLAS"));
    EXPECT_THAT(version,
                HasSubstr(openblas_core_for(cpu) + " kernels (" + vector_isa_name(cpu.isa) + ")"));
    EXPECT_THAT(version, HasSubstr("from the CPU's features"));
    EXPECT_THAT(version, Not(HasSubstr("warning")));
}

// Every call goes through the loaded library: a small product checked by hand.
TEST(GemmLibrary, SgemmComputesColumnMajorProducts) {
    const float a[6] = {1, 2, 3, 4, 5, 6};  // 2 x 3, column-major
    const float b[6] = {1, 0, 2, 1, 0, 3};  // 3 x 2
    float c[4] = {};
    sgemm(Trans::N, Trans::N, 2, 2, 3, a, 2, b, 3, c, 2);
    EXPECT_EQ(c[0], 1 * 1 + 3 * 0 + 5 * 2);
    EXPECT_EQ(c[1], 2 * 1 + 4 * 0 + 6 * 2);
    EXPECT_EQ(c[2], 1 * 1 + 3 * 0 + 5 * 3);
    EXPECT_EQ(c[3], 2 * 1 + 4 * 0 + 6 * 3);
    float ct[4] = {};  // A^T (3 x 2 read as 2 x 3 transposed) times B
    sgemm(Trans::T, Trans::N, 2, 2, 3, a, 3, b, 3, ct, 2);
    EXPECT_EQ(ct[0], 1 * 1 + 2 * 0 + 3 * 2);
    EXPECT_EQ(ct[3], 4 * 1 + 5 * 0 + 6 * 3);
}

// The real binary in a fresh process, since the kernel set is chosen once per process.
std::string run_binary(const std::string& env, const std::string& args) {
    const std::string command = env + " " + MLPTRAIN_BINARY + " " + args + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    EXPECT_NE(pipe, nullptr) << command;
    if (!pipe) return "";
    std::string out;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
    EXPECT_EQ(pclose(pipe), 0) << command << "\n" << out;
    return out;
}

int count(const std::string& text, const std::string& what) {
    int n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

TEST(GemmLibrary, NarrowKernelsOnAVectorCpuWarnOnceWithTheFix) {
    const CpuFeatures cpu = cpu_features();
    if (cpu.isa < VectorIsa::avx2) GTEST_SKIP() << "this CPU has no AVX2";
    const std::filesystem::path dir = test::make_temp_dir("mlptrain_gemm_warning");
    test::write_idx_dataset(test::synthetic_dataset(200, 40, 4, 5, 3), (dir / "data").string());
    const std::string train = "train --data " + (dir / "data").string() +
                              " --device cpu --epochs 2 --hidden 8 --batch-size 16";

    // OpenBLAS's SSE3 kernels, what it falls back to on a CPU it does not know.
    const std::string slow =
        run_binary("MLPTRAIN_BLAS=libopenblas.so.0 OPENBLAS_CORETYPE=Prescott", train);
    EXPECT_THAT(slow, ContainsRegex("device: cpu \\([0-9]+ threads?, OpenBLAS Prescott\\)"));
    EXPECT_EQ(count(slow, "warning: the GEMM library"), 1) << slow;
    EXPECT_THAT(slow, HasSubstr("unset OPENBLAS_CORETYPE, so that mlptrain picks " +
                                openblas_core_for(cpu)));

    // oneDNN capped to AVX, where oneDNN is installed and this run did not name another
    // library (the ASan suite names OpenBLAS: LeakSanitizer crashes on oneDNN, tests/asan.sh).
    const std::string capped =
        std::getenv("MLPTRAIN_BLAS") ? "" : run_binary("DNNL_MAX_CPU_ISA=avx", train);
    if (capped.find("oneDNN") != std::string::npos) {
        EXPECT_THAT(capped, ContainsRegex("device: cpu \\([0-9]+ threads?, oneDNN avx\\)"));
        EXPECT_EQ(count(capped, "warning: the GEMM library"), 1) << capped;
        EXPECT_THAT(capped, HasSubstr("unset DNNL_MAX_CPU_ISA"));
    }

    // This process's environment: the library this process loaded, warning only if it did.
    const std::string same = run_binary("", train);
    EXPECT_THAT(same, HasSubstr(", " + gemm_library().summary() + ")"));
    EXPECT_EQ(count(same, "warning:"), gemm_library().warning.empty() ? 0 : 1) << same;
    std::filesystem::remove_all(dir);
}

// The cut depends on the shape alone: large GEMMs in parts about as wide (the last one may
// be narrower; none narrower than 64 unless it is the last), along C's longer side, at most
// k_gemm_parts_max; small ones whole.
TEST(GemmParts, ShapeAloneDecides) {
    const GemmParts fwd = gemm_parts(128, 64, 784);  // layer 0 forward at batch 64
    EXPECT_FALSE(fwd.along_n);
    EXPECT_EQ(fwd.n_parts, 2);
    EXPECT_EQ(fwd.width, 64);
    const GemmParts dw = gemm_parts(784, 128, 64);  // its weight gradient
    EXPECT_FALSE(dw.along_n);
    EXPECT_EQ(dw.n_parts, 4);
    EXPECT_EQ(dw.width, 208);
    const GemmParts big = gemm_parts(128, 8192, 784);
    EXPECT_TRUE(big.along_n);
    EXPECT_EQ(big.n_parts, k_gemm_parts_max);
    EXPECT_EQ(big.width, 2048);
    EXPECT_EQ(gemm_parts(64, 64, 128).n_parts, 1);  // too little work
    EXPECT_EQ(gemm_parts(10, 1024, 64).n_parts, 1);
    EXPECT_EQ(gemm_parts(100, 100, 100000).n_parts, 1);  // too narrow to cut
}

// A GEMM cut in parts gives the same bits on one thread as on two, with every transpose,
// cut along n or along m, with padded leading dimensions, and the product it should
// (against double-precision sums).
TEST(GemmParts, SameBitsOnAnyThreadCount) {
    const int64_t k = 128, pad = 3;
    for (const auto& [m, n] : {std::pair<int64_t, int64_t>{200, 300}, {300, 200}}) {
        ASSERT_GT(gemm_parts(m, n, k).n_parts, 1);
        EXPECT_EQ(gemm_parts(m, n, k).along_n, n >= m);
        for (const Trans ta : {Trans::N, Trans::T}) {
            for (const Trans tb : {Trans::N, Trans::T}) {
                const int64_t lda = (ta == Trans::N ? m : k) + pad;
                const int64_t ldb = (tb == Trans::N ? k : n) + pad;
                const int64_t ldc = m + pad;
                std::vector<float> a(size_t(lda * (ta == Trans::N ? k : m)));
                std::vector<float> b(size_t(ldb * (tb == Trans::N ? n : k)));
                for (size_t i = 0; i < a.size(); ++i)
                    a[i] = float(int(i * 7919 % 201) - 100) / 97.0f;
                for (size_t i = 0; i < b.size(); ++i)
                    b[i] = float(int(i * 104729 % 199) - 99) / 89.0f;
                std::vector<float> one(size_t(ldc * n), -7.0f), two(size_t(ldc * n), -7.0f);
                CpuBackend be;
                apply_cpu_threads(1);
                be.gemm(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, one.data(), ldc);
                apply_cpu_threads(2);
                be.gemm(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, two.data(), ldc);
                EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0);
                for (int64_t j = 0; j < n; ++j) {  // the padding rows stay untouched
                    for (int64_t i = m; i < ldc; ++i) EXPECT_EQ(one[size_t(i + j * ldc)], -7.0f);
                }
                for (int64_t i = 0; i < m; i += 37) {
                    for (int64_t j = 0; j < n; j += 41) {
                        double want = 0.0;
                        for (int64_t p = 0; p < k; ++p) {
                            const float x =
                                ta == Trans::N ? a[size_t(i + p * lda)] : a[size_t(p + i * lda)];
                            const float y =
                                tb == Trans::N ? b[size_t(p + j * ldb)] : b[size_t(j + p * ldb)];
                            want += double(x) * double(y);
                        }
                        EXPECT_NEAR(one[size_t(i + j * ldc)], want, 1e-3)
                            << m << "x" << n << " at " << i << "," << j;
                    }
                }
            }
        }
    }
    apply_cpu_threads(0);
}

// What a thread count must not change: a whole training run with GEMMs large enough to be
// cut, on one thread and on two, makes the same model file.
TEST(GemmParts, TrainingMakesTheSameModelOnOneThreadAndTwo) {
    const std::filesystem::path dir = test::make_temp_dir("mlptrain_gemm_threads");
    test::write_idx_dataset(test::synthetic_dataset(512, 64, 28, 28, 10), (dir / "data").string());
    std::vector<std::string> models;
    for (const char* threads : {"1", "2"}) {
        const std::string model = (dir / (std::string("m") + threads + ".safetensors")).string();
        const test::CliResult r = test::run_mlptrain(
            {"train", "--data", (dir / "data").string(), "--device", "cpu", "--epochs", "2",
             "--batch-size", "128", "--threads", threads, "--save-model", model});
        ASSERT_EQ(r.code, 0) << r.err;
        models.push_back(test::slurp(model));
    }
    ASSERT_FALSE(models[0].empty());
    EXPECT_TRUE(models[0] == models[1]) << "the model depends on the thread count";
    std::filesystem::remove_all(dir);
    apply_cpu_threads(0);
}

}  // namespace
}  // namespace mlp
