#include "host/cpu/gemm_library.hpp"

#include <dlfcn.h>    // dlopen, dlsym: the library is loaded at first use
#include <strings.h>  // strcasecmp

#include <atomic>
#include <cstdio>   // snprintf
#include <cstdlib>  // getenv, setenv, unsetenv
#include <vector>

#ifdef _OPENMP
#include <omp.h>  // the thread count OpenBLAS built on OpenMP follows
#endif

#include "host/base/error.hpp"

namespace mlp {

const char* vector_isa_name(VectorIsa isa) {
    switch (isa) {
        case VectorIsa::avx512:
            return "AVX-512";
        case VectorIsa::avx2:
            return "AVX2";
        case VectorIsa::avx:
            return "AVX";
        case VectorIsa::sse:
            break;
    }
    return "SSE";
}

// GCC's CPUID probe also reads XGETBV, so a feature whose registers the OS does
// not save reads as absent. The AVX-512 subsets are Skylake-X's, the ones
// OpenBLAS's and BLIS's AVX-512 kernels are built for.
CpuFeatures cpu_features() {
    CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        f.isa = VectorIsa::avx512;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        f.isa = VectorIsa::avx2;
    } else if (__builtin_cpu_supports("avx")) {
        f.isa = VectorIsa::avx;
    }
    f.amd = __builtin_cpu_is("amd");
#endif
    return f;
}

// Zen's and Haswell's kernel sets run the same AVX2 kernels with blocking sizes tuned for
// each vendor's caches; SkylakeX's are OpenBLAS's AVX-512 single-precision kernels (the
// newer Intel sets only add bf16).
std::string openblas_core_for(const CpuFeatures& cpu) {
    switch (cpu.isa) {
        case VectorIsa::avx512:
            return "SkylakeX";
        case VectorIsa::avx2:
            return cpu.amd ? "Zen" : "Haswell";
        default:
            return "";
    }
}

VectorIsa kernel_set_isa(const std::string& kernels) {
    static const struct {
        const char* name;
        VectorIsa isa;
    } table[] = {
        // OpenBLAS core names
        {"SkylakeX", VectorIsa::avx512},
        {"CooperLake", VectorIsa::avx512},
        {"SapphireRapids", VectorIsa::avx512},
        {"Haswell", VectorIsa::avx2},
        {"Zen", VectorIsa::avx2},
        {"Sandybridge", VectorIsa::avx},
        {"Bulldozer", VectorIsa::avx},
        {"Piledriver", VectorIsa::avx},
        {"Steamroller", VectorIsa::avx},
        {"Excavator", VectorIsa::avx},
        // BLIS configurations (zen4's kernels are AVX-512)
        {"skx", VectorIsa::avx512},
        {"knl", VectorIsa::avx512},
        {"zen4", VectorIsa::avx512},
        {"zen3", VectorIsa::avx2},
        {"zen2", VectorIsa::avx2},
        {"zen", VectorIsa::avx2},
        {"haswell", VectorIsa::avx2},
        {"sandybridge", VectorIsa::avx},
        // oneDNN ISAs
        {"avx512_core", VectorIsa::avx512},
        {"avx512_core_vnni", VectorIsa::avx512},
        {"avx512_core_bf16", VectorIsa::avx512},
        {"avx512_core_amx", VectorIsa::avx512},
        {"avx2", VectorIsa::avx2},
        {"avx2_vnni", VectorIsa::avx2},
        {"avx", VectorIsa::avx},
    };
    for (const auto& row : table) {
        if (strcasecmp(row.name, kernels.c_str()) == 0) return row.isa;
    }
    return VectorIsa::sse;
}

std::string GemmLibrary::description() const {
    if (kernels.empty()) return name;
    return name + ", " + kernels + " kernels (" + vector_isa_name(kernel_isa) + ")";
}

std::string GemmLibrary::summary() const {
    const std::string library = name.substr(0, name.find(' '));
    return kernels.empty() ? library : library + " " + kernels;
}

namespace {

// The CBLAS enumerations' values (cblas.h), which every CBLAS library shares.
constexpr int k_col_major = 102;
constexpr int k_no_trans = 111;
constexpr int k_trans = 112;

using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                         float, float*, int);
// oneDNN's GEMM, row-major: dnnl_sgemm(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C,
// ldc) with dnnl_dim_t (int64_t) sizes; returns a status.
using DnnlSgemmFn = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t,
                            const float*, int64_t, float, float*, int64_t);

struct Loaded {
    GemmLibrary info;
    bool chose_core = false;  // OPENBLAS_CORETYPE was set here, before OpenBLAS loaded
    SgemmFn sgemm = nullptr;
    DnnlSgemmFn dnnl_sgemm = nullptr;  // oneDNN, which has no CBLAS interface
};

template <class F>
F symbol(void* handle, const char* name) {
    return reinterpret_cast<F>(dlsym(handle, name));
}

// Sets a variable for the duration of a scope, then restores what was there.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const std::string& value) : name_(name) {
        if (const char* old = std::getenv(name)) {
            had_ = true;
            old_ = old;
        }
        setenv(name, value.c_str(), 1);
    }
    ~ScopedEnv() {
        if (had_) {
            setenv(name_, old_.c_str(), 1);
        } else {
            unsetenv(name_);
        }
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* name_;
    bool had_ = false;
    std::string old_;
};

// dnnl_cpu_isa_t's values (oneapi/dnnl/dnnl_types.h), by the names oneDNN's documentation
// gives them.
std::string dnnl_isa_name(int isa) {
    switch (isa) {
        case 0x1:
            return "sse41";
        case 0x3:
            return "avx";
        case 0x7:
            return "avx2";
        case 0x407:
            return "avx2_vnni";
        case 0x27:
            return "avx512_core";
        case 0x67:
            return "avx512_core_vnni";
        case 0xe7:
            return "avx512_core_bf16";
        case 0x3e7:
            return "avx512_core_amx";
        default:
            break;
    }
    // A value this table does not know: named by the widest ISA its bits include (each
    // dnnl_cpu_isa_t is the bits of the ISAs below it and its own).
    if ((isa & 0x27) == 0x27) return "avx512_core";
    if ((isa & 0x7) == 0x7) return "avx2";
    if ((isa & 0x3) == 0x3) return "avx";
    return "sse41";
}

void describe(Loaded& l, void* handle, const CpuFeatures& cpu) {
    GemmLibrary& g = l.info;
    g.name = g.file;
    if (auto config = symbol<const char* (*)()>(handle, "openblas_get_config")) {
        const std::string c = config();  // "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."
        const size_t second = c.find(' ', c.find(' ') + 1);
        g.name = c.substr(0, second);
        if (auto core = symbol<const char* (*)()>(handle, "openblas_get_corename")) {
            g.kernels = core();
        }
    } else if (auto version = symbol<const char* (*)()>(handle, "bli_info_get_version_str")) {
        g.name = std::string("BLIS ") + version();
        auto query = symbol<int (*)()>(handle, "bli_arch_query_id");
        auto arch = symbol<const char* (*)(int)>(handle, "bli_arch_string");
        if (query && arch) g.kernels = arch(query());
    } else if (auto version = symbol<const int* (*)()>(handle, "dnnl_version")) {
        // dnnl_version_t starts with major, minor, patch.
        const int* v = version();
        g.name = "oneDNN " + std::to_string(v[0]) + "." + std::to_string(v[1]) + "." +
                 std::to_string(v[2]);
        if (auto isa = symbol<int (*)()>(handle, "dnnl_get_effective_cpu_isa")) {
            g.kernels = dnnl_isa_name(isa());
        }
    } else if (auto mkl = symbol<void (*)(char*, int)>(handle, "MKL_Get_Version_String")) {
        // MKL dispatches on CPU features itself and does not name the kernels it runs.
        char text[256] = {};
        mkl(text, int(sizeof text) - 1);
        g.name = std::string("MKL (") + text + ")";
    }
    g.kernel_isa = kernel_set_isa(g.kernels);
    if (!g.kernels.empty() && g.kernel_isa < cpu.isa) {
        const std::string core = openblas_core_for(cpu);
        std::string fix;
        const bool openblas = g.name.rfind("OpenBLAS", 0) == 0;
        if (openblas && l.chose_core) {
            fix = "this OpenBLAS did not take OPENBLAS_CORETYPE=" + core +
                  " (a build without DYNAMIC_ARCH?); install oneDNN (Debian: libdnnl2)";
        } else if (openblas && std::getenv("OPENBLAS_CORETYPE")) {
            fix = "unset OPENBLAS_CORETYPE, so that mlptrain picks " + core +
                  " from the CPU's features";
        } else if (openblas) {
            fix = "start the process with OPENBLAS_CORETYPE=" + core +
                  " (OpenBLAS was loaded before mlptrain could choose)";
        } else if (g.name.rfind("oneDNN", 0) == 0) {
            fix = "unset DNNL_MAX_CPU_ISA and ONEDNN_MAX_CPU_ISA, which cap oneDNN's ISA";
        } else {
            fix = "unset MLPTRAIN_BLAS for the default library";
        }
        g.warning = "the GEMM library " + g.name + " runs its " + g.kernels + " (" +
                    vector_isa_name(g.kernel_isa) + ") kernels on a CPU with " +
                    vector_isa_name(cpu.isa) + ", several times slower than it can; fix: " + fix;
    }
}

// Opens `file`, choosing OpenBLAS's kernel set first where it is OpenBLAS; nullptr (and
// dlerror()'s text in `why`) where it cannot be opened.
void* open_library(const std::string& file, const CpuFeatures& cpu, std::string& chosen_by,
                   bool& chose_core, std::string& why) {
    const bool openblas = file.find("openblas") != std::string::npos;
    void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (handle) {
        chosen_by = "the library's own (it was loaded before mlptrain)";
    } else if (const char* user = std::getenv("OPENBLAS_CORETYPE"); openblas && user && *user) {
        chosen_by = std::string("OPENBLAS_CORETYPE=") + user + ", set in the environment";
    } else if (const std::string core = openblas_core_for(cpu); openblas && !core.empty()) {
        chosen_by = "OPENBLAS_CORETYPE=" + core + ", from the CPU's features (" +
                    vector_isa_name(cpu.isa) + ")";
        // Not thread-safe against another thread's getenv; it runs once, at first use.
        const ScopedEnv env("OPENBLAS_CORETYPE", core);
        handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
        chose_core = handle != nullptr;
    } else if (openblas) {
        chosen_by = "the library's own (the CPU has no AVX2)";
    } else if (file.find("dnnl") != std::string::npos) {
        chosen_by = "the library's own: its JIT writes code for the widest ISA CPUID reports";
    } else {
        chosen_by = "the library's own";
    }
    if (!handle) handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* error = dlerror();
        why = error ? error : "unknown error";
    }
    return handle;
}

// oneDNN first: its JIT GEMMs were the fastest measured (docs/PERFORMANCE.md) and it picks
// its code from CPUID features itself; OpenBLAS, with its kernel set chosen here, where
// oneDNN is not installed.
Loaded load() {
    Loaded l;
    const CpuFeatures cpu = cpu_features();
    const char* requested = std::getenv("MLPTRAIN_BLAS");
    const std::vector<std::string> files =
        requested && *requested ? std::vector<std::string>{requested}
                                : std::vector<std::string>{"libdnnl.so.2", "libopenblas.so.0"};
    void* handle = nullptr;
    std::string failures;
    for (const std::string& file : files) {
        std::string why;
        handle = open_library(file, cpu, l.info.chosen_by, l.chose_core, why);
        if (handle) {
            l.info.file = file;
            break;
        }
        failures += (failures.empty() ? "" : "; ") + why;
    }
    if (!handle) {
        throw Error("cannot load a GEMM library: " + failures +
                    (requested && *requested ? " (named by MLPTRAIN_BLAS)"
                                             : " (Debian: libdnnl2 or libopenblas0, installed by "
                                               "scripts/setup.sh)"));
    }
    if (!failures.empty()) l.info.fallback_reason = failures;
    l.sgemm = symbol<SgemmFn>(handle, "cblas_sgemm");
    if (!l.sgemm) l.dnnl_sgemm = symbol<DnnlSgemmFn>(handle, "dnnl_sgemm");
    if (!l.sgemm && !l.dnnl_sgemm) {
        throw Error("the GEMM library " + l.info.file + " has neither cblas_sgemm nor dnnl_sgemm");
    }
    // Every call runs on one thread: the backend spreads a GEMM's parts over its threads.
    // OpenBLAS built on OpenMP sets OpenMP's count too, which the backend's is kept over.
#ifdef _OPENMP
    const int omp_threads = omp_get_max_threads();
#endif
    if (auto set = symbol<void (*)(int)>(handle, "openblas_set_num_threads")) set(1);
    if (auto set = symbol<void (*)(int64_t)>(handle, "bli_thread_set_num_threads")) set(1);
    if (auto set = symbol<void (*)(int)>(handle, "MKL_Set_Num_Threads")) set(1);
#ifdef _OPENMP
    omp_set_num_threads(omp_threads);
#endif
    describe(l, handle, cpu);
    return l;  // the handle stays open for the process's lifetime
}

const Loaded& loaded() {
    static const Loaded l = load();
    return l;
}

}  // namespace

const GemmLibrary& gemm_library() {
    return loaded().info;
}

std::string take_gemm_library_warning() {
    static std::atomic<bool> taken{false};
    const std::string& warning = gemm_library().warning;
    if (warning.empty() || taken.exchange(true)) return "";
    return warning;
}

void sgemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
           const float* b, int64_t ldb, float* c, int64_t ldc) {
    static const SgemmFn fn = loaded().sgemm;
    static const DnnlSgemmFn dnnl = loaded().dnnl_sgemm;
#ifdef _OPENMP
    // OpenBLAS built on OpenMP takes its thread count from OpenMP's, whatever it was told,
    // outside a parallel region; one thread is asked for around the call.
    const int n_threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (n_threads > 1) omp_set_num_threads(1);
#endif
    int status = 0;  // CBLAS reports nothing; oneDNN a dnnl_status_t
    if (fn) {
        fn(k_col_major, ta == Trans::N ? k_no_trans : k_trans,
           tb == Trans::N ? k_no_trans : k_trans, int(m), int(n), int(k), 1.0f, a, int(lda), b,
           int(ldb), 0.0f, c, int(ldc));
    } else {
        // Column-major C = op(A) op(B) is row-major C^T = op(B)^T op(A)^T.
        status = dnnl(tb == Trans::N ? 'N' : 'T', ta == Trans::N ? 'N' : 'T', n, m, k, 1.0f, b, ldb,
                      a, lda, 0.0f, c, ldc);
    }
#ifdef _OPENMP
    if (n_threads > 1) omp_set_num_threads(n_threads);
#endif
    if (status != 0) {
        throw Error("dnnl_sgemm failed (status " + std::to_string(status) + ") for a " +
                    std::to_string(m) + " x " + std::to_string(n) + " x " + std::to_string(k) +
                    " GEMM");
    }
}

}  // namespace mlp
