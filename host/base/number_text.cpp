#include "host/base/number_text.hpp"

#include <cstdio>
#include <cstdlib>

namespace mlp {

// Tries 1, 2, ... significant digits and keeps the first text that reads back as `v` through
// strtod, as the readers of these files (metadata, summaries) parse it.
template <class T>
static std::string shortest(T v, int max_digits) {
    char buf[40];
    for (int digits = 1; digits <= max_digits; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, double(v));
        if (T(std::strtod(buf, nullptr)) == v) break;
    }
    return buf;
}

std::string shortest_text(float v) {
    return shortest(v, 9);
}

std::string shortest_text(double v) {
    return shortest(v, 17);
}

std::string percent_text(double fraction) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * fraction);
    return buf;
}

}  // namespace mlp
