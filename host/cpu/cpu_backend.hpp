// CPU backend: CBLAS (OpenBLAS) for the GEMMs, OpenMP for the functors. It is
// the oracle the CUDA backend is tested against, and makes the trainer run
// where there is no GPU.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#include "host/cpu/cpu_fused_ops.hpp"
#include "host/train/backend.hpp"

namespace mlp {

class CpuBackend : public CpuFusedOps<CpuBackend> {
public:
    template <class T>
    using Buffer = std::vector<T>;

    template <class T>
    Buffer<T> alloc(int64_t n) {
        return Buffer<T>(size_t(n));
    }
    template <class T>
    void copy_to_device(T* dst, const T* h_src, int64_t n) {
        if (n > 0) std::memcpy(dst, h_src, size_t(n) * sizeof(T));
    }
    template <class T>
    void copy_to_host(T* h_dst, const T* src, int64_t n) {
        if (n > 0) std::memcpy(h_dst, src, size_t(n) * sizeof(T));
    }

    void gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
              const float* b, int64_t ldb, float* c, int64_t ldc);

    // Each thread runs its own copy of the functor (firstprivate): through the
    // caller's reference, a float store in the loop might change the
    // functor's own float fields, so the compiler would reload them every
    // iteration and not vectorize; a private copy cannot be aliased.
    template <class F>
    void for_each(int64_t n, const F& f) {
        const F body = f;
        // Threads only pay off on large ranges; the per-row functors of a
        // 64-sample batch are cheaper than waking the team.
#pragma omp parallel for schedule(static) firstprivate(body) if (n >= k_parallel_threshold)
        for (int64_t i = 0; i < n; ++i) body(i);
    }

    // Rows (samples) in parallel, each row's columns (features) as an inner
    // loop: no per-element index division, and the compiler can vectorize it.
    template <class F>
    void for_each_2d(int64_t n_rows, int64_t n_cols, const F& f) {
#pragma omp parallel for schedule(static) if (n_rows * n_cols >= k_parallel_threshold)
        for (int64_t r = 0; r < n_rows; ++r) {
            const F body = f;  // a private copy, as in for_each
            for (int64_t c = 0; c < n_cols; ++c) body(r, c);
        }
    }

    struct Graph {};  // nothing to record: the CPU runs the work directly

    template <class Body>
    void run_graph(Graph&, int64_t, Body&& body) {
        body();
    }

    void synchronize() {}

    template <class Body>
    double time_seconds(Body&& body) {
        const auto t0 = std::chrono::steady_clock::now();
        body();
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }

    static constexpr int64_t k_parallel_threshold = 1 << 15;
};

}  // namespace mlp
