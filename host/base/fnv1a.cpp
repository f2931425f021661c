#include "host/base/fnv1a.hpp"

namespace mlp {

uint64_t fnv1a64(const void* data, size_t n, uint64_t hash) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
        hash ^= p[i];
        hash *= 0x100000001b3ull;
    }
    return hash;
}

}  // namespace mlp
