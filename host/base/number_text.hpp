// Numbers as text for the files and lines people read: the shortest decimal that reads back as
// the same value, and fractions as percentages.
#pragma once

#include <string>

namespace mlp {

// The shortest "%g" text that reads back as exactly `v`, so that 0.05f is written "0.05" and
// not "0.05000000074505806", and a flag compares equal after a round trip through a file.
std::string shortest_text(float v);
std::string shortest_text(double v);

// `fraction` as a percentage with two decimals: 0.9731 -> "97.31%".
std::string percent_text(double fraction);

}  // namespace mlp
