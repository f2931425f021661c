// The backend interface the training step is written against (host/train/engine.hpp).
// It is a compile-time interface: Engine<Backend> is instantiated once with
// CpuBackend (host compiler) and once with CudaBackend (nvcc), so the CPU
// tests run the exact step code, functors included, that the GPU runs.
//
// A backend provides:
//   template <class T> using Buffer = ...;        // owner with data(), size()
//   template <class T> Buffer<T> alloc(int64_t n);
//   template <class T> void copy_to_device(T* dst, const T* h_src, int64_t n);
//   template <class T> void copy_to_host(T* h_dst, const T* src, int64_t n);
//   void gemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k,
//             const float* a, int64_t lda, const float* b, int64_t ldb,
//             float* c, int64_t ldc);           // C = op(A) op(B), column-major
//   void gemm_batched(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k,
//                     const float* a, int64_t lda, int64_t stride_a,
//                     const float* b, int64_t ldb, int64_t stride_b,
//                     float* c, int64_t ldc, int64_t stride_c, int64_t n_models);
//                                                 // the same GEMM for n_models models, model
//                                                 // i's operands at i * stride: each model's
//                                                 // result is what gemm() gives it alone (on
//                                                 // the CPU bit for bit, CBLAS per model)
//   void reserve_gemm_operands(int64_t n_a, int64_t n_b);
//                                                 // room for the largest A and B (values,
//                                                 // ld x columns) any later gemm gets
//   template <class F> void for_each(int64_t n, const F& f);   // f(i), i in [0, n)
//   template <class F> void for_each_2d(int64_t n_rows, int64_t n_cols, const F& f);
//                                                 // f(r, c) over rows x cols, c fastest; a
//                                                 // functor with row(r) (ops/per_model.hpp)
//                                                 // may be run as row(r)(c)
//   struct Graph;                                 // owner of the recordings, one per key,
//                                                 // with int64_t n_nodes(key): launches recorded
//   template <class Body> void run_graph(Graph& g, int64_t key, Body&& body);
//   void synchronize();
//   template <class Body> double time_seconds(Body&& body);  // body's duration
//   the fused operations of --kernels fused (set_precision, reserve_batch, relu_mask_bytes,
//   gemm_bias_act, gemm_drelu_bgrad, weight_grad, join_side, bias_grad,
//   softmax_xent_bgrad, grad_norm_guard), each over a batch of n_models models whose
//   operands are Strided spans: on the CPU the generic functors in the same order
//   (host/cpu/cpu_fused_ops.hpp), on CUDA cuBLASLt epilogues (strided-batch layouts when
//   n_models > 1) and cuda/kernels/.
//
// Copies, GEMMs and for_each are ordered (one stream on the GPU); copy_to_host
// returns with the data in place. Buffers are move-only owners: a copy would
// be a second owner of device memory. run_graph records body's work on the
// first call with a key and replays it on later calls with the same Graph and
// key (CUDA graphs; the CPU backend records closures), without calling body
// again; so the work must depend only on device memory, never on host values
// that change between calls. A Graph keeps one recording per key. Copies
// between host and device are refused (Error) while recording, as CUDA
// capture refuses them. time_seconds runs body and returns how long its work
// took where it ran (CUDA events on the stream, a steady clock on the CPU),
// for benchmarks.
// reserve_gemm_operands is called once, after set_precision and before any
// recording: a backend whose precision casts the operands (bf16 on CUDA)
// allocates the scratch for the cast copies there, since nothing may be
// allocated while a CUDA graph is captured; the others do nothing.
//
// check_backend<B>() asserts the members above at compile time, one
// static_assert per member, so a backend that misses one fails to build on
// every machine, not only where its own compiler runs.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace mlp {

enum class Trans { N, T };

// A per-model array of a batch of models: model k's part starts k * stride values after
// data. A batch of one has stride 0 wherever the single model's pointer is all there is.
template <class T>
struct Strided {
    T* data = nullptr;
    int64_t stride = 0;

    T* at(int64_t k) const { return data + k * stride; }
    template <class U = T, class = std::enable_if_t<!std::is_const<U>::value>>
    operator Strided<const U>() const {
        return {data, stride};
    }
};

namespace backend_detail {

// Stand-ins for the callables a backend is handed: only their types are used.
struct Kernel1d {
    void operator()(int64_t) const {}
};
struct Kernel2d {
    void operator()(int64_t, int64_t) const {}
};
struct Work {
    void operator()() const {}
};

template <class B, class = void>
struct has_buffer : std::false_type {};
template <class B>
struct has_buffer<
    B, std::enable_if_t<
           std::is_same<decltype(std::declval<typename B::template Buffer<float>&>().data()),
                        float*>::value &&
           std::is_convertible<
               decltype(std::declval<const typename B::template Buffer<float>&>().size()),
               int64_t>::value>> : std::true_type {};

template <class B, class = void>
struct has_alloc : std::false_type {};
template <class B>
struct has_alloc<
    B, std::enable_if_t<std::is_same<decltype(std::declval<B&>().template alloc<float>(int64_t())),
                                     typename B::template Buffer<float>>::value>> : std::true_type {
};

template <class B, class = void>
struct has_copies : std::false_type {};
template <class B>
struct has_copies<
    B, std::void_t<decltype(std::declval<B&>().copy_to_device(
                       std::declval<float*>(), std::declval<const float*>(), int64_t())),
                   decltype(std::declval<B&>().copy_to_host(
                       std::declval<float*>(), std::declval<const float*>(), int64_t()))>>
    : std::true_type {};

template <class B, class = void>
struct has_gemm : std::false_type {};
template <class B>
struct has_gemm<
    B, std::void_t<decltype(std::declval<B&>().gemm(
           Trans::N, Trans::T, int64_t(), int64_t(), int64_t(), std::declval<const float*>(),
           int64_t(), std::declval<const float*>(), int64_t(), std::declval<float*>(), int64_t()))>>
    : std::true_type {};

template <class B, class = void>
struct has_gemm_batched : std::false_type {};
template <class B>
struct has_gemm_batched<
    B, std::void_t<decltype(std::declval<B&>().gemm_batched(
           Trans::N, Trans::T, int64_t(), int64_t(), int64_t(), std::declval<const float*>(),
           int64_t(), int64_t(), std::declval<const float*>(), int64_t(), int64_t(),
           std::declval<float*>(), int64_t(), int64_t(), int64_t()))>> : std::true_type {};

template <class B, class = void>
struct has_reserve_gemm_operands : std::false_type {};
template <class B>
struct has_reserve_gemm_operands<
    B, std::void_t<decltype(std::declval<B&>().reserve_gemm_operands(int64_t(), int64_t()))>>
    : std::true_type {};

template <class B, class = void>
struct has_for_each : std::false_type {};
template <class B>
struct has_for_each<B, std::void_t<decltype(std::declval<B&>().for_each(
                           int64_t(), std::declval<const Kernel1d&>()))>> : std::true_type {};

template <class B, class = void>
struct has_for_each_2d : std::false_type {};
template <class B>
struct has_for_each_2d<B, std::void_t<decltype(std::declval<B&>().for_each_2d(
                              int64_t(), int64_t(), std::declval<const Kernel2d&>()))>>
    : std::true_type {};

template <class B, class = void>
struct has_graph : std::false_type {};
template <class B>
struct has_graph<
    B, std::enable_if_t<std::is_default_constructible<typename B::Graph>::value,
                        decltype(std::declval<B&>().run_graph(std::declval<typename B::Graph&>(),
                                                              int64_t(), std::declval<Work&>()))>>
    : std::true_type {};

template <class B, class = void>
struct has_graph_nodes : std::false_type {};
template <class B>
struct has_graph_nodes<
    B, std::enable_if_t<std::is_same<
           decltype(std::declval<const typename B::Graph&>().n_nodes(int64_t())), int64_t>::value>>
    : std::true_type {};

// The fused operations, by name: their signatures are checked where Engine calls them.
template <class B, class = void>
struct has_fused_ops : std::false_type {};
template <class B>
struct has_fused_ops<B,
                     std::void_t<decltype(&B::set_precision), decltype(&B::reserve_batch),
                                 decltype(&B::relu_mask_bytes), decltype(&B::gemm_bias_act),
                                 decltype(&B::gemm_drelu_bgrad), decltype(&B::weight_grad),
                                 decltype(&B::join_side), decltype(&B::bias_grad),
                                 decltype(&B::softmax_xent_bgrad), decltype(&B::grad_norm_guard)>>
    : std::true_type {};

template <class B, class = void>
struct has_synchronize : std::false_type {};
template <class B>
struct has_synchronize<B, std::void_t<decltype(std::declval<B&>().synchronize())>>
    : std::true_type {};

template <class B, class = void>
struct has_time_seconds : std::false_type {};
template <class B>
struct has_time_seconds<
    B, std::enable_if_t<std::is_same<
           decltype(std::declval<B&>().time_seconds(std::declval<Work&>())), double>::value>>
    : std::true_type {};

template <class B>
constexpr bool buffer_is_move_only() {
    using Buf = typename B::template Buffer<float>;
    return std::is_nothrow_move_constructible<Buf>::value &&
           std::is_nothrow_move_assignable<Buf>::value && !std::is_copy_constructible<Buf>::value &&
           !std::is_copy_assignable<Buf>::value;
}

}  // namespace backend_detail

// True once every member of the interface above is present with its
// signature; used as static_assert(check_backend<B>()) beside each backend.
template <class B>
constexpr bool check_backend() {
    using namespace backend_detail;
    static_assert(has_buffer<B>::value, "Backend::Buffer<T> needs T* data() and int64_t size()");
    static_assert(has_alloc<B>::value, "Backend needs Buffer<T> alloc<T>(int64_t)");
    static_assert(has_copies<B>::value,
                  "Backend needs copy_to_device(T*, const T*, int64_t) and copy_to_host");
    static_assert(has_gemm<B>::value,
                  "Backend needs gemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc)");
    static_assert(has_gemm_batched<B>::value,
                  "Backend needs gemm_batched(ta, tb, m, n, k, a, lda, stride_a, b, ldb, stride_b, "
                  "c, ldc, stride_c, n_models)");
    static_assert(has_reserve_gemm_operands<B>::value,
                  "Backend needs reserve_gemm_operands(int64_t n_a, int64_t n_b)");
    static_assert(has_for_each<B>::value, "Backend needs for_each(int64_t, const F&)");
    static_assert(has_for_each_2d<B>::value,
                  "Backend needs for_each_2d(int64_t, int64_t, const F&)");
    static_assert(has_graph<B>::value,
                  "Backend needs a default-constructible Graph and void run_graph(Graph&, int64_t, "
                  "Body&&)");
    static_assert(has_graph_nodes<B>::value, "Backend::Graph needs int64_t n_nodes(int64_t key)");
    static_assert(has_fused_ops<B>::value,
                  "Backend needs the fused operations (set_precision ... grad_norm_guard)");
    static_assert(has_synchronize<B>::value, "Backend needs synchronize()");
    static_assert(has_time_seconds<B>::value, "Backend needs double time_seconds(Body&&)");
    static_assert(buffer_is_move_only<B>(),
                  "Backend::Buffer<T> must be move-only (noexcept moves, no copies)");
    return true;
}

}  // namespace mlp
