// The backend interface the training step is written against (host/engine.hpp).
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
//   template <class F> void for_each(int64_t n, const F& f);   // f(i), i in [0, n)
//   template <class F> void for_each_2d(int64_t n_rows, int64_t n_cols, const F& f);
//                                                 // f(r, c) over rows x cols, c fastest
//   struct Graph;                                 // owner of one recorded sequence
//   template <class Body> void run_graph(Graph& g, int64_t key, Body&& body);
//   void synchronize();
//   template <class Body> double time_seconds(Body&& body);  // body's duration
//
// Copies, GEMMs and for_each are ordered (one stream on the GPU); copy_to_host
// returns with the data in place. run_graph may record body's work once and
// replay it on later calls with the same Graph and key (CUDA graphs), so the
// work must depend only on device memory, never on host values that change
// between calls; a different key records afresh. time_seconds runs body and
// returns how long its work took where it ran (CUDA events on the stream, a
// steady clock on the CPU), for benchmarks.
#pragma once

#include <cstdint>

namespace mlp {

enum class Trans { N, T };

}  // namespace mlp
