#include "cuda/check.hpp"

#include <cublasLt.h>

namespace mlp {

static std::string where(const char* call, const char* file, int line) {
    return std::string(call) + " at " + file + ":" + std::to_string(line);
}

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
    // Clear a non-sticky error so the next call does not report it again.
    cudaGetLastError();
    throw CudaError("CUDA error " + std::string(cudaGetErrorName(status)) + " (" +
                    cudaGetErrorString(status) + ") in " + where(call, file, line));
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
    throw CudaError("cuBLAS error " + std::string(cublasGetStatusName(status)) + " (" +
                    cublasGetStatusString(status) + ") in " + where(call, file, line));
}

void throw_cublaslt_error(cublasStatus_t status, const char* call, const char* file, int line) {
    throw CudaError("cuBLASLt error " + std::string(cublasLtGetStatusName(status)) + " (" +
                    cublasLtGetStatusString(status) + ") in " + where(call, file, line));
}

}  // namespace mlp
