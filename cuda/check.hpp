// Every CUDA runtime, cuBLAS and cuBLASLt status is checked; a failure becomes a
// CudaError that names the call, the file and the line. Host-only header.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string>

#include "host/base/error.hpp"

namespace mlp {

class CudaError : public Error {
public:
    explicit CudaError(const std::string& what) : Error(what) {}
};

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file,
                                   int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line);
[[noreturn]] void throw_cublaslt_error(cublasStatus_t status, const char* call, const char* file,
                                       int line);

}  // namespace mlp

#define CUDA_CHECK(call)                                                          \
    do {                                                                          \
        const cudaError_t mlp_status_ = (call);                                   \
        if (mlp_status_ != cudaSuccess)                                           \
            ::mlp::throw_cuda_error(mlp_status_, #call, __FILE__, __LINE__);      \
    } while (0)

#define CUBLAS_CHECK(call)                                                        \
    do {                                                                          \
        const cublasStatus_t mlp_status_ = (call);                                \
        if (mlp_status_ != CUBLAS_STATUS_SUCCESS)                                 \
            ::mlp::throw_cublas_error(mlp_status_, #call, __FILE__, __LINE__);    \
    } while (0)

#define CUBLASLT_CHECK(call)                                                      \
    do {                                                                          \
        const cublasStatus_t mlp_status_ = (call);                                \
        if (mlp_status_ != CUBLAS_STATUS_SUCCESS)                                 \
            ::mlp::throw_cublaslt_error(mlp_status_, #call, __FILE__, __LINE__);  \
    } while (0)
