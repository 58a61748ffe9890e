#include "qkv/inspect/attention_map.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace qkv {

float AttentionMap::at(int64_t layer, int64_t head, int64_t query, int64_t key) const {
  const int64_t T = length();
  return weights[static_cast<size_t>(((layer * n_head + head) * T + query) * T + key)];
}

std::vector<float> AttentionMap::head(int64_t layer, int64_t h) const {
  if (layer < 0 || layer >= n_layer || h < -1 || h >= n_head)
    throw std::out_of_range("attention map: no layer " + std::to_string(layer) + " head " +
                            std::to_string(h));
  const int64_t T = length();
  std::vector<float> out(static_cast<size_t>(T * T), 0.0f);
  const int64_t first = h < 0 ? 0 : h;
  const int64_t last = h < 0 ? n_head : h + 1;
  for (int64_t k = first; k < last; ++k)
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < T; ++j) out[static_cast<size_t>(i * T + j)] += at(layer, k, i, j);
  if (h < 0)
    for (auto& w : out) w /= static_cast<float>(n_head);
  return out;
}

std::string AttentionMap::to_json() const {
  const int64_t T = length();
  nlohmann::json layers = nlohmann::json::array();
  for (int64_t l = 0; l < n_layer; ++l) {
    nlohmann::json heads = nlohmann::json::array();
    for (int64_t h = 0; h < n_head; ++h) {
      nlohmann::json rows = nlohmann::json::array();
      for (int64_t i = 0; i < T; ++i) {
        std::vector<float> row(static_cast<size_t>(T));
        for (int64_t j = 0; j < T; ++j) row[static_cast<size_t>(j)] = at(l, h, i, j);
        rows.push_back(row);
      }
      heads.push_back(std::move(rows));
    }
    layers.push_back(std::move(heads));
  }
  nlohmann::json j = {{"text", text},
                      {"tokens", tokens},
                      {"token_ids", ids},
                      {"n_layer", n_layer},
                      {"n_head", n_head},
                      {"weights", std::move(layers)},
                      {"shape", {n_layer, n_head, T, T}}};
  // Pieces of a byte-level tokenizer may be partial UTF-8: replace rather than throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace qkv
