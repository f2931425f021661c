// CPU backend: the GEMM library (host/cpu/gemm_library.hpp: oneDNN or OpenBLAS)
// for the GEMMs, cut into parts that run on the OpenMP threads, and OpenMP for
// the functors. It is
// the oracle the CUDA backend is tested against, and makes the trainer run
// where there is no GPU.
//
// It also models what a CUDA graph imposes: run_graph records the launches of
// its body as closures holding their arguments by value, and replays them on
// later calls without calling the body, so work that reads a host value which
// changes between calls goes stale here as it would on the GPU.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "host/base/error.hpp"
#include "host/cpu/cpu_fused_ops.hpp"
#include "host/train/backend.hpp"

namespace mlp {

// Move-only owner of n values, zero-initialised. Move-only like DeviceBuffer,
// so a copy that a CUDA build would reject is rejected on every machine.
template <class T>
class HostBuffer {
public:
    HostBuffer() = default;
    explicit HostBuffer(int64_t n) : data_(n > 0 ? new T[size_t(n)]() : nullptr), size_(n) {}
    HostBuffer(HostBuffer&& other) noexcept
        : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)) {}
    HostBuffer& operator=(HostBuffer&& other) noexcept {
        data_ = std::move(other.data_);
        size_ = std::exchange(other.size_, 0);
        return *this;
    }
    HostBuffer(const HostBuffer&) = delete;
    HostBuffer& operator=(const HostBuffer&) = delete;

    // Shallow const, as DeviceBuffer: a const owner still hands out its memory.
    T* data() const { return data_.get(); }
    int64_t size() const { return size_; }

private:
    std::unique_ptr<T[]> data_;
    int64_t size_ = 0;
};

// How CpuBackend cuts a GEMM (C m x n) into parts that run side by side:
// n_parts parts `width` wide along C's columns (along_n) or rows, the last
// one possibly narrower. Depends on the shape alone (cpu_backend.cpp).
struct GemmParts {
    bool along_n;
    int64_t n_parts;
    int64_t width;
};
// Parts are at most this many: as many cores as a GEMM of the default model
// at batch 1024 keeps busy, a number that divides evenly over 2 or 4 threads.
constexpr int64_t k_gemm_parts_max = 4;
GemmParts gemm_parts(int64_t m, int64_t n, int64_t k);

class CpuBackend : public CpuFusedOps<CpuBackend> {
public:
    template <class T>
    using Buffer = HostBuffer<T>;

    // The recorded launches of each key, replayed in order.
    struct Graph {
        std::map<int64_t, std::vector<std::function<void()>>> recordings;

        // Launches (functors and GEMMs) recorded for key; 0 if none.
        int64_t n_nodes(int64_t key) const {
            const auto found = recordings.find(key);
            return found == recordings.end() ? 0 : int64_t(found->second.size());
        }
    };

    template <class T>
    Buffer<T> alloc(int64_t n) {
        return Buffer<T>(n);
    }
    template <class T>
    void copy_to_device(T* dst, const T* h_src, int64_t n) {
        refuse_while_recording("copy_to_device");
        if (n > 0) std::memcpy(dst, h_src, size_t(n) * sizeof(T));
    }
    template <class T>
    void copy_to_host(T* h_dst, const T* src, int64_t n) {
        refuse_while_recording("copy_to_host");
        if (n > 0) std::memcpy(h_dst, src, size_t(n) * sizeof(T));
    }

    void gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
              const float* b, int64_t ldb, float* c, int64_t ldc) {
        if (recording_) {
            recording_->push_back([=] { run_gemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc); });
            return;
        }
        run_gemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
    }
    // One GEMM per model, the models spread over the OpenMP threads (each
    // model's parts in turn on its thread), so model i's result is what gemm()
    // gives it; a batch of one is gemm() itself, its parts spread over the
    // threads.
    void gemm_batched(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a,
                      int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b,
                      float* c, int64_t ldc, int64_t stride_c, int64_t n_models) {
        auto run = [=] {
            // Outside any parallel region, so that its parts can spread over the threads.
            if (n_models == 1) return run_gemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);
            parallel_for(n_models, max_threads(), [=](int64_t i) {
                run_gemm(ta, tb, m, n, k, a + i * stride_a, lda, b + i * stride_b, ldb,
                         c + i * stride_c, ldc);
            });
        };
        if (recording_) {
            recording_->push_back(run);
            return;
        }
        run();
    }
    // Scratch for GEMM operands in another type (bf16 on CUDA); the CPU
    // computes in fp32 only (set_precision), so it needs none.
    void reserve_gemm_operands(int64_t, int64_t) {}

    template <class F>
    void for_each(int64_t n, const F& f) {
        if (recording_) {
            recording_->push_back([n, f] { run_for_each(n, f); });
            return;
        }
        run_for_each(n, f);
    }

    template <class F>
    void for_each_2d(int64_t n_rows, int64_t n_cols, const F& f) {
        if (recording_) {
            recording_->push_back([n_rows, n_cols, f] { run_for_each_2d(n_rows, n_cols, f); });
            return;
        }
        run_for_each_2d(n_rows, n_cols, f);
    }

    // The first call with a key records body's launches, then every call
    // replays them. A body that throws leaves no recording behind.
    template <class Body>
    void run_graph(Graph& graph, int64_t key, Body&& body) {
        refuse_while_recording("run_graph");
        auto found = graph.recordings.find(key);
        if (found == graph.recordings.end()) {
            std::vector<std::function<void()>> launches;
            recording_ = &launches;
            try {
                body();
            } catch (...) {
                recording_ = nullptr;
                throw;
            }
            recording_ = nullptr;
            found = graph.recordings.emplace(key, std::move(launches)).first;
        }
        for (const auto& launch : found->second) launch();
    }

    void synchronize() { refuse_while_recording("synchronize"); }

    template <class Body>
    double time_seconds(Body&& body) {
        refuse_while_recording("time_seconds");
        const auto t0 = std::chrono::steady_clock::now();
        body();
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }

    static constexpr int64_t k_parallel_threshold = 1 << 15;

private:
    // Each thread runs its own copy of the functor (firstprivate): through the
    // caller's reference, a float store in the loop might change the
    // functor's own float fields, so the compiler would reload them every
    // iteration and not vectorize; a private copy cannot be aliased.
    template <class F>
    static void run_for_each(int64_t n, const F& f) {
        const F body = f;
        // Threads only pay off on large ranges; the per-row functors of a
        // 64-sample batch are cheaper than waking the team.
#pragma omp parallel for schedule(static) firstprivate(body) if (n >= k_parallel_threshold)
        for (int64_t i = 0; i < n; ++i) body(i);
    }

    template <class F, class = void>
    struct has_row : std::false_type {};
    template <class F>
    struct has_row<F, std::void_t<decltype(std::declval<const F&>().row(int64_t()))>>
        : std::true_type {};

    // Rows (samples, or the models of a batch) in parallel, each row's columns
    // as an inner loop: no per-element index division, and the compiler can
    // vectorize it. A functor with row(r) (ops/per_model.hpp) hands out the
    // row's functor, a private copy whose fields no store can alias.
    // A view whose rows reach past model 0 spreads the models over the threads
    // whatever their size: an element of such a row can be a whole chunk of one
    // model's work (its gradient norm's part), and static scheduling gives each
    // thread the same models in every launch. A view of model 0 alone runs as
    // its bare functor would for one model: a row per model is run_for_each
    // over the row's elements, and rows of samples are split over the threads
    // only when there are enough of them.
    template <class F>
    static void run_for_each_2d(int64_t n_rows, int64_t n_cols, const F& f) {
        bool parallel = n_rows * n_cols >= k_parallel_threshold;
        if constexpr (has_row<F>::value) {
            if (f.spans_models(n_rows)) {
                parallel = n_rows * n_cols >= 64;
            } else if (n_rows == 1) {
                return run_for_each(n_cols, f.row(0));
            }
        }
#pragma omp parallel for schedule(static) if (parallel)
        for (int64_t r = 0; r < n_rows; ++r) {
            if constexpr (has_row<F>::value) {
                const auto body = f.row(r);
                for (int64_t c = 0; c < n_cols; ++c) body(c);
            } else {
                const F body = f;  // a private copy, as in for_each
                for (int64_t c = 0; c < n_cols; ++c) body(r, c);
            }
        }
    }

    static void run_gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a,
                         int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc);

    // OpenMP's thread count for a new region here: 1 inside a parallel region.
    static int max_threads();

    // body(i) for i < n, statically scheduled on at most n_threads threads (in turn when
    // that is 1). An exception may not leave a parallel region: the first is kept and
    // thrown after it.
    template <class Body>
    static void parallel_for(int64_t n, int n_threads, const Body& body) {
        if (n_threads <= 1 || n <= 1) {
            for (int64_t i = 0; i < n; ++i) body(i);
            return;
        }
        [[maybe_unused]] const int team = int(n < n_threads ? n : n_threads);
        std::exception_ptr error;
#pragma omp parallel for schedule(static) num_threads(team)
        for (int64_t i = 0; i < n; ++i) {
            try {
                body(i);
            } catch (...) {
#pragma omp critical(mlp_cpu_parallel_for_error)
                if (!error) error = std::current_exception();
            }
        }
        if (error) std::rethrow_exception(error);
    }

    // CUDA capture refuses host copies and synchronisation on the capturing
    // stream; refusing them here makes such a body fail on every machine.
    void refuse_while_recording(const char* what) const {
        if (recording_) {
            throw Error(std::string(what) +
                        " while a graph is being recorded: a replay would not repeat it");
        }
    }

    std::vector<std::function<void()>>* recording_ = nullptr;  // set only inside run_graph
};

static_assert(check_backend<CpuBackend>(), "CpuBackend must meet host/train/backend.hpp");

}  // namespace mlp
