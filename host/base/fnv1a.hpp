// FNV-1a 64: the checksum of the data a run trained on, of checkpoint tensors, and of a sweep's
// flags. Not cryptographic; it tells apart inputs that differ by accident.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mlp {

constexpr uint64_t k_fnv1a64_offset = 0xcbf29ce484222325ull;

// FNV-1a 64 over `n` bytes, continuing from `hash`.
uint64_t fnv1a64(const void* data, size_t n, uint64_t hash = k_fnv1a64_offset);

}  // namespace mlp
