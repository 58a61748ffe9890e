#include "qkv/inspect/attention_probe.h"

#include <stdexcept>

namespace qkv {

std::vector<TokenId> encode_for_inspection(const Tokenizer& tokenizer, const std::string& text,
                                           int64_t block_size, const std::string& what) {
  if (text.empty()) throw std::invalid_argument(what + " is empty");
  const auto ids = tokenizer.encode_from(text, what);
  if (ids.empty()) throw std::invalid_argument(what + " encodes to no tokens");
  if (static_cast<int64_t>(ids.size()) > block_size)
    throw std::invalid_argument(what + " is " + std::to_string(ids.size()) +
                                " tokens, more than the model's context of " +
                                std::to_string(block_size));
  return ids;
}

Inspection run_for_inspection(TransformerLM& model, const std::vector<TokenId>& ids) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();  // no dropout: the weights a user sees are the ones inference uses
  const auto device = model->parameters().front().device();
  auto idx = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kInt64)
                 .unsqueeze(0)
                 .to(device);  // (1, T)
  auto inspection = model->inspect(idx);
  if (was_training) model->train();
  return inspection;
}

AttentionMap probe_attention(TransformerLM& model, const Tokenizer& tokenizer,
                             const std::vector<TokenId>& ids, const std::string& text) {
  const auto capture = run_for_inspection(model, ids);
  AttentionMap map;
  map.text = text;
  map.ids = ids;
  for (TokenId id : ids) map.tokens.push_back(tokenizer.piece(id));
  map.n_layer = static_cast<int64_t>(capture.attention_weights.size());
  map.n_head = model->config().n_head;
  auto all = torch::stack(capture.attention_weights)  // (L, 1, H, T, T)
                 .squeeze(1)
                 .to(torch::kCPU, torch::kFloat32)
                 .contiguous();
  map.weights.assign(all.data_ptr<float>(), all.data_ptr<float>() + all.numel());
  return map;
}

}  // namespace qkv
