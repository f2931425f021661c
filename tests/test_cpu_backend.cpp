// The CPU backend's side of the backend contract (host/train/backend.hpp):
// move-only buffers, and run_graph recording launches once and replaying
// them, refusing host copies while it records, as CUDA graph capture does.
#include <gtest/gtest.h>

#include <type_traits>
#include <vector>

#include "host/base/error.hpp"
#include "host/cpu/cpu_backend.hpp"

namespace mlp {
namespace {

static_assert(check_backend<CpuBackend>(), "CpuBackend meets the contract");
static_assert(!std::is_copy_constructible<CpuBackend::Buffer<float>>::value &&
                  !std::is_copy_assignable<CpuBackend::Buffer<float>>::value,
              "a CPU buffer copy must fail to compile, as a DeviceBuffer copy does");
static_assert(std::is_nothrow_move_constructible<CpuBackend::Buffer<int8_t>>::value,
              "buffers move, e.g. into a std::vector");

// Not a backend: no graph. The check must say no, so it can catch a miss.
struct NoGraphBackend {
    template <class T>
    using Buffer = CpuBackend::Buffer<T>;
    template <class T>
    Buffer<T> alloc(int64_t n);
    template <class T>
    void copy_to_device(T*, const T*, int64_t);
    template <class T>
    void copy_to_host(T*, const T*, int64_t);
    void gemm(Trans, Trans, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t,
              float*, int64_t);
    template <class F>
    void for_each(int64_t, const F&);
    template <class F>
    void for_each_2d(int64_t, int64_t, const F&);
    void synchronize();
    template <class Body>
    double time_seconds(Body&&);
};
static_assert(backend_detail::has_for_each<NoGraphBackend>::value &&
                  !backend_detail::has_graph<NoGraphBackend>::value,
              "the detection tells a missing member apart");

TEST(CpuBuffer, MovesItsMemoryAndLeavesTheSourceEmpty) {
    CpuBackend be;
    auto a = be.alloc<float>(3);
    EXPECT_EQ(a.size(), 3);
    EXPECT_EQ(a.data()[2], 0.0f);  // zero-initialised
    float* p = a.data();
    auto b = std::move(a);
    EXPECT_EQ(b.data(), p);
    EXPECT_EQ(b.size(), 3);
    EXPECT_EQ(a.size(), 0);
    EXPECT_EQ(a.data(), nullptr);
}

TEST(CpuGraph, ReplaysTheRecordedLaunchesWithoutCallingTheBody) {
    CpuBackend be;
    CpuBackend::Graph graph;
    std::vector<int> x(5, 0);
    int* d_x = x.data();
    int n_calls = 0;
    auto body = [&] {
        ++n_calls;
        be.for_each(5, [d_x](int64_t i) { d_x[i] += 1; });
        be.for_each_2d(1, 5, [d_x](int64_t, int64_t c) { d_x[c] *= 2; });
    };
    be.run_graph(graph, 0, body);
    EXPECT_EQ(x, std::vector<int>(5, 2));  // recorded, then run once
    be.run_graph(graph, 0, body);
    be.run_graph(graph, 0, body);
    EXPECT_EQ(n_calls, 1);
    EXPECT_EQ(x, std::vector<int>(5, 14));  // ((2 + 1) * 2 + 1) * 2
    EXPECT_EQ(graph.n_nodes(0), 2);
    EXPECT_EQ(graph.n_nodes(1), 0);
}

TEST(CpuGraph, ALaunchKeepsTheArgumentsItWasRecordedWith) {
    // What a replayed CUDA graph does to a host value passed by value: the
    // recorded launch keeps the old one. Engine keeps such values in device
    // memory (the per-step table) for this reason.
    CpuBackend be;
    CpuBackend::Graph graph;
    float x = 0.0f;
    float* d_x = &x;
    for (float step : {1.0f, 10.0f}) {
        be.run_graph(graph, 0, [&] { be.for_each(1, [d_x, step](int64_t) { *d_x += step; }); });
    }
    EXPECT_EQ(x, 2.0f);  // the second call replayed step 1, not 10
}

TEST(CpuGraph, KeepsOneRecordingPerKey) {
    CpuBackend be;
    CpuBackend::Graph graph;
    int n_calls = 0, sum = 0;
    int* d_sum = &sum;
    for (int64_t key : {0, 1, 0, 1, 1}) {
        be.run_graph(graph, key, [&] {
            ++n_calls;
            be.for_each(1, [d_sum, key](int64_t) { *d_sum += int(key) + 1; });
        });
    }
    EXPECT_EQ(n_calls, 2);  // switching keys replays instead of recording afresh
    EXPECT_EQ(sum, 1 + 2 + 1 + 2 + 2);
}

TEST(CpuGraph, RefusesHostCopiesWhileRecording) {
    CpuBackend be;
    CpuBackend::Graph graph;
    std::vector<float> d(2, 0.0f), h(2, 1.0f);
    EXPECT_THROW(be.run_graph(graph, 0, [&] { be.copy_to_device(d.data(), h.data(), 2); }), Error);
    EXPECT_THROW(be.run_graph(graph, 0, [&] { be.copy_to_host(h.data(), d.data(), 2); }), Error);
    EXPECT_THROW(be.run_graph(graph, 0, [&] { be.synchronize(); }), Error);
    EXPECT_EQ(d[0], 0.0f);
    EXPECT_EQ(graph.n_nodes(0), 0);  // a failed recording is not kept
    // Outside a recording, and after a failed one, copies work.
    be.copy_to_device(d.data(), h.data(), 2);
    EXPECT_EQ(d[0], 1.0f);
    int n_calls = 0;
    be.run_graph(graph, 0, [&] { ++n_calls; });
    EXPECT_EQ(n_calls, 1);
}

TEST(CpuGraph, RecordsGemmArguments) {
    CpuBackend be;
    CpuBackend::Graph graph;
    const std::vector<float> a = {1, 2, 3, 4};  // 2 x 2, column-major
    std::vector<float> b = {1, 0, 0, 1}, c(4, -1.0f);
    be.run_graph(graph, 0, [&] {
        be.gemm(Trans::N, Trans::N, 2, 2, 2, a.data(), 2, b.data(), 2, c.data(), 2);
    });
    EXPECT_EQ(c, a);
    b = {0, 1, 1, 0};  // swap the columns; the replay reads b's memory anew
    be.run_graph(graph, 0, [] {});
    EXPECT_EQ(c, (std::vector<float>{3, 4, 1, 2}));
}

}  // namespace
}  // namespace mlp
