// Range checks of flag values, shared by every command's configuration. Each throws a
// UsageError that names the flag and states the bounds in words ("--lr: must be > 0, not 0"),
// and a real-valued flag refuses NaN and infinity whatever its bounds.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

namespace mlp {

struct RealBounds {
    double lo;
    bool lo_open;  // value > lo when set, value >= lo otherwise
    double hi;     // infinity: no upper bound
    bool hi_open;
};

constexpr double k_unbounded = std::numeric_limits<double>::infinity();
constexpr RealBounds k_positive{0.0, true, k_unbounded, true};
constexpr RealBounds k_non_negative{0.0, false, k_unbounded, true};
constexpr RealBounds k_below_one{0.0, false, 1.0, true};  // [0, 1)
constexpr RealBounds k_open_unit{0.0, true, 1.0, true};   // (0, 1)

// "> 0", ">= 0 and < 1".
std::string describe(const RealBounds& bounds);

void check_real(const char* flag, double value, const RealBounds& bounds);

// lo <= value <= hi; a hi of INT64_MAX reads as no upper bound.
void check_int(const char* flag, int64_t value, int64_t lo,
               int64_t hi = std::numeric_limits<int64_t>::max());

// A decimal integer in 0..2^64-1, digits only: a sign or an overflow is refused rather than
// wrapped (strtoull would turn "-1" into 2^64-1).
uint64_t parse_uint64(const char* flag, const std::string& text);

}  // namespace mlp
