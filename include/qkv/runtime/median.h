#pragma once

#include <algorithm>
#include <vector>

namespace qkv {

// The median of timings (the upper one for an even count; 0 when empty): robust to the odd slow
// step from an evaluation, a checkpoint or the OS, which a mean is not.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace qkv
