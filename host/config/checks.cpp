#include "host/config/checks.hpp"

#include <cmath>
#include <cstdio>

#include "host/base/error.hpp"

namespace mlp {

static std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

std::string describe(const RealBounds& b) {
    std::string s = (b.lo_open ? "> " : ">= ") + num(b.lo);
    if (b.hi != k_unbounded) s += (b.hi_open ? " and < " : " and <= ") + num(b.hi);
    return s;
}

void check_real(const char* flag, double value, const RealBounds& b) {
    if (!std::isfinite(value)) {
        throw UsageError(flag, "must be a finite number " + describe(b) + ", not " + num(value));
    }
    const bool above = b.lo_open ? value > b.lo : value >= b.lo;
    const bool below = b.hi_open ? value < b.hi : value <= b.hi;
    if (!above || !below) throw UsageError(flag, "must be " + describe(b) + ", not " + num(value));
}

void check_int(const char* flag, int64_t value, int64_t lo, int64_t hi) {
    if (value >= lo && value <= hi) return;
    const std::string range = hi == std::numeric_limits<int64_t>::max()
                                  ? ">= " + std::to_string(lo)
                                  : "between " + std::to_string(lo) + " and " + std::to_string(hi);
    throw UsageError(flag, "must be " + range + ", not " + std::to_string(value));
}

uint64_t parse_uint64(const char* flag, const std::string& text) {
    const uint64_t max = std::numeric_limits<uint64_t>::max();
    uint64_t v = 0;
    bool ok = !text.empty() && text.size() <= 20;
    for (char c : text) {
        if (!ok) break;
        const unsigned d = unsigned(c - '0');
        ok = c >= '0' && c <= '9' && v <= (max - d) / 10;
        v = v * 10 + d;
    }
    if (!ok) {
        throw UsageError(flag,
                         "'" + text + "' is not an integer in 0..18446744073709551615 (2^64-1)");
    }
    return v;
}

}  // namespace mlp
