// The CPU backend's GEMM library, loaded at first use: oneDNN (libdnnl.so.2,
// through dnnl_sgemm), else OpenBLAS (libopenblas.so.0) with its kernel set
// chosen from the CPU's features before the library initialises.
//
// Why loaded at run time: OpenBLAS picks its kernels once, when it is loaded,
// from a table of CPU models it knows. On a CPU newer than the distribution's
// build it falls back to SSE3 ("Prescott") kernels, three to four times slower
// than its AVX2 or AVX-512 ones. The only way to choose for it is its
// OPENBLAS_CORETYPE variable, read while it initialises, which for a library
// linked at build time happens before main(). So the backend loads it itself,
// having set that variable from CPUID features (never from the model number);
// a library user gets the same choice as the command line. oneDNN needs no
// such help: its JIT writes code for the widest ISA that CPUID reports, and its
// GEMMs were the fastest measured here (docs/PERFORMANCE.md).
//
// MLPTRAIN_BLAS names the library to load instead, a file name or a path: a
// CBLAS library (libopenblas.so.0, BLIS's libblis.so.4, MKL's libmkl_rt.so) or
// oneDNN, for measuring them side by side (benchmarks/gemm_libraries.sh).
// OPENBLAS_CORETYPE set by the user wins.
#pragma once

#include <cstdint>
#include <string>

#include "host/train/backend.hpp"  // Trans

namespace mlp {

// The vector instructions the CPU and its operating system support, from CPUID
// (and XGETBV: an OS that does not save the wide registers rules them out).
enum class VectorIsa { sse = 0, avx = 1, avx2 = 2, avx512 = 3 };
const char* vector_isa_name(VectorIsa isa);  // "SSE", "AVX", "AVX2", "AVX-512"

struct CpuFeatures {
    VectorIsa isa = VectorIsa::sse;
    bool amd = false;  // vendor, for the name of OpenBLAS's AVX2 kernel set
};
CpuFeatures cpu_features();

// The OpenBLAS kernel set (an OPENBLAS_CORETYPE value) for these features, or
// "" where the library's own choice is as good (no AVX2).
std::string openblas_core_for(const CpuFeatures& cpu);

// The widest vector instructions a library's kernel set uses, from its name:
// OpenBLAS core names ("Haswell", "SkylakeX", "Prescott", ...), BLIS
// configurations ("haswell", "zen3", "skx", "generic", ...) and oneDNN ISAs
// ("avx2", "avx512_core", ...). A name it does not know is taken as SSE (not
// reported as fast).
VectorIsa kernel_set_isa(const std::string& kernels);

struct GemmLibrary {
    std::string file;     // what was loaded, e.g. "libdnnl.so.2"
    std::string name;     // "OpenBLAS 0.3.21", "BLIS 0.9.0", "oneDNN 2.6.3", "MKL (...)"
    std::string kernels;  // the kernel set it runs, e.g. "avx2", "Haswell"; "" if it does not say
    VectorIsa kernel_isa = VectorIsa::sse;
    std::string chosen_by;  // how the kernel set was chosen, for --version
    // Why the libraries tried before this one did not load ("" when the first did).
    std::string fallback_reason;
    // Non-empty when the CPU has wider vectors than the kernel set uses: says
    // what runs and how to fix it.
    std::string warning;

    // "oneDNN avx2", "OpenBLAS Haswell": the device line's words for it.
    std::string summary() const;
    // "oneDNN 2.6.3, avx2 kernels (AVX2)": the name, and the kernel set where it says one.
    std::string description() const;
};

// Loads the library on first use and returns it; throws mlp::Error naming the
// library when it cannot be loaded. Concurrent first calls are safe among
// themselves, but loading OpenBLAS sets OPENBLAS_CORETYPE for a moment, which
// races with another thread's getenv: a sweep over several devices loads it
// before it starts their threads.
const GemmLibrary& gemm_library();

// The warning of gemm_library() the first time it is asked for in this
// process, "" after that and when there is none: callers that print it print
// it once.
std::string take_gemm_library_warning();

// Column-major C = op(A) op(B), m x n, through the loaded library (cblas_sgemm,
// or dnnl_sgemm on the transposed problem), on the calling thread alone
// (CpuBackend spreads a GEMM's parts over threads). Throws mlp::Error when
// oneDNN reports a failure (CBLAS reports none).
void sgemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
           const float* b, int64_t ldb, float* c, int64_t ldc);

}  // namespace mlp
