#pragma once

#include <string>
#include <vector>

namespace qkv {

// The attention table as the lectures draw it: a header row of key tokens, then one row per
// query token with its weights to 2 decimals. Positions a causal model may not see (key after
// query) are left blank rather than printed as 0.00, so the mask is visible at a glance.
// `weights` is (T, T) row-major; `labels` has T entries (see token_label).
std::string format_attention_table(const std::vector<std::string>& labels,
                                   const std::vector<float>& weights);

}  // namespace qkv
