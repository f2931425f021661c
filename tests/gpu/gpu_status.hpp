// Whether the GPU tests can run here, shared by every GPU test file. They skip only where no
// NVIDIA GPU is expected; where MLPTRAIN_REQUIRE_GPU is set (not 0) or nvidia-smi lists a GPU,
// an unusable device is a failure with the reason, so a broken GPU machine cannot pass the
// suite by skipping it.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "host/data/dataset.hpp"
#include "host/device/device.hpp"

namespace mlp {
namespace gpu_test {

// True where MLPTRAIN_REQUIRE_GPU asks for the whole GPU check (the bundle's run script sets it
// and carries the data with it).
inline bool gpu_required() {
    const char* env = std::getenv("MLPTRAIN_REQUIRE_GPU");
    return env && *env && std::string(env) != "0";
}

// Why this machine should have a usable GPU, or "" where nothing says so.
inline std::string gpu_expected_because() {
    if (gpu_required())
        return "MLPTRAIN_REQUIRE_GPU=" + std::string(std::getenv("MLPTRAIN_REQUIRE_GPU"));
    std::string listed;
    if (FILE* smi = popen("nvidia-smi -L 2>/dev/null", "r")) {
        char line[512];
        while (std::fgets(line, sizeof line, smi)) {
            if (listed.empty() && std::string(line).rfind("GPU ", 0) == 0) listed = line;
        }
        pclose(smi);
    }
    while (!listed.empty() && (listed.back() == '\n' || listed.back() == '\r')) listed.pop_back();
    return listed.empty() ? "" : "nvidia-smi lists " + listed;
}

// Probed once per process: whether the tests can run, and if not whether that is a skip.
struct GpuStatus {
    CudaDeviceInfo info;
    std::string expected_because;
};

inline const GpuStatus& gpu_status() {
    static const GpuStatus status = [] {
        GpuStatus s;
        s.info = probe_cuda_device();
        if (!s.info.usable) s.expected_because = gpu_expected_because();
        return s;
    }();
    return status;
}

}  // namespace gpu_test
}  // namespace mlp

// A data set folder an accuracy test needs: missing, it skips, except where the whole GPU check
// was asked for (MLPTRAIN_REQUIRE_GPU), where it fails.
#define REQUIRE_DATA(dir, what)                                       \
    do {                                                              \
        if (!::mlp::has_dataset_files(dir)) {                         \
            if (::mlp::gpu_test::gpu_required()) {                    \
                FAIL() << "no " << (what) << " files in " << (dir)    \
                       << " although MLPTRAIN_REQUIRE_GPU is set";    \
            }                                                         \
            GTEST_SKIP() << "no " << (what) << " files in " << (dir); \
        }                                                             \
    } while (0)

#define REQUIRE_GPU()                                                                    \
    do {                                                                                 \
        const ::mlp::gpu_test::GpuStatus& gpu_ = ::mlp::gpu_test::gpu_status();          \
        if (!gpu_.info.usable && !gpu_.expected_because.empty()) {                       \
            FAIL() << "no usable CUDA device although " << gpu_.expected_because << ": " \
                   << gpu_.info.reason;                                                  \
        }                                                                                \
        if (!gpu_.info.usable) {                                                         \
            GTEST_SKIP() << "no usable CUDA device: " << gpu_.info.reason;               \
        }                                                                                \
    } while (0)
