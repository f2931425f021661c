// libFuzzer target for the checkpoint loader (safetensors); see fuzz_checks.hpp.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    mlp::fuzz::check_safetensors_input(data, size);
    return 0;
}
