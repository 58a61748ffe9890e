#include "qkv/inspect/attention_table.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "qkv/inspect/token_label.h"

namespace qkv {

namespace {

constexpr size_t kCell = 6;          // " 0.40 " fits; a label longer than this is cut
constexpr size_t kMaxRowLabel = 12;  // query labels may be a little wider than columns

std::string pad_left(const std::string& s, size_t width) {
  const size_t w = display_width(s);
  return w >= width ? s : std::string(width - w, ' ') + s;
}

std::string pad_right(const std::string& s, size_t width) {
  const size_t w = display_width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

}  // namespace

std::string format_attention_table(const std::vector<std::string>& labels,
                                   const std::vector<float>& weights) {
  const size_t T = labels.size();
  if (weights.size() != T * T)
    throw std::invalid_argument("attention table: " + std::to_string(weights.size()) +
                                " weights for " + std::to_string(T) + " tokens");
  size_t row_label = 1;
  for (const auto& l : labels)
    row_label = std::max(row_label, std::min(display_width(l), kMaxRowLabel));

  std::string out = std::string(row_label, ' ');
  for (const auto& l : labels) out += pad_left(truncate_display(l, kCell - 1), kCell);
  out += "\n";
  for (size_t i = 0; i < T; ++i) {
    std::string line = pad_right(truncate_display(labels[i], row_label), row_label);
    for (size_t j = 0; j < T; ++j) {
      const float w = weights[i * T + j];
      if (j > i && w == 0.0f) {  // masked: a future key the query may not see
        line += std::string(kCell, ' ');
        continue;
      }
      char cell[16];
      std::snprintf(cell, sizeof cell, "%*.2f", static_cast<int>(kCell), w);
      line += cell;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

}  // namespace qkv
