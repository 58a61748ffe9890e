// The transformer language model: encodings, norms, causality, learning, sizes and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "qkv/model/layer_norm.h"
#include "qkv/model/sinusoidal_positional_encoding.h"
#include "qkv/model/transformer_lm.h"

namespace {

using qkv::ModelConfig;
using qkv::TransformerLM;

ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 11;
  c.block_size = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 16;
  return c;
}

TEST(SinusoidalPositionalEncoding, MatchesTheFormula) {
  const int64_t L = 64, d = 32;
  qkv::SinusoidalPositionalEncoding pe(L, d);
  auto table = pe->forward(L);
  for (int64_t pos : {0, 1, 7, 63})
    for (int64_t i : {0, 1, 5, 15}) {
      double angle = pos / std::pow(10000.0, 2.0 * i / d);
      EXPECT_NEAR(table[pos][2 * i].item<float>(), std::sin(angle), 1e-6) << pos << "," << i;
      EXPECT_NEAR(table[pos][2 * i + 1].item<float>(), std::cos(angle), 1e-6) << pos << "," << i;
    }
  EXPECT_LE(table.abs().max().item<float>(), 1.0f);
  // Every position up to block_size has its own code: the smallest pairwise distance is > 0.
  auto dist = torch::cdist(table, table) + torch::eye(L) * 1e9;
  EXPECT_GT(dist.min().item<float>(), 0.1f);
  // An offset window is the same rows, which the KV cache relies on.
  EXPECT_TRUE(torch::equal(pe->forward(4, 10), table.slice(0, 10, 14)));
}

TEST(LayerNorm, NormalisesEachPositionBeforeItsAffinePart) {
  torch::manual_seed(3);
  qkv::LayerNorm ln(32);
  auto x = torch::randn({4, 9, 32}) * 5 + 3;
  auto y = ln(x);  // weight 1, bias 0 at init: the affine part is the identity
  EXPECT_LT(y.mean(-1).abs().max().item<float>(), 1e-5);
  EXPECT_LT((y.var(-1, /*unbiased=*/false) - 1).abs().max().item<float>(), 1e-3);
  // And the normalisation itself, against mean/variance computed by hand in float64.
  auto x64 = x.to(torch::kFloat64);
  auto ref = (x64 - x64.mean(-1, true)) / torch::sqrt(x64.var(-1, false, true) + 1e-5);
  EXPECT_LT((y.to(torch::kFloat64) - ref).abs().max().item<double>(), 1e-5);
}

TEST(TransformerLM, LogitsAtOrBeforeTDoNotDependOnLaterTokens) {
  torch::manual_seed(0);
  TransformerLM model(small_config());
  model->eval();
  auto idx = torch::randint(0, 11, {2, 16}, torch::kLong);
  auto logits = model(idx);
  ASSERT_EQ(logits.sizes(), torch::IntArrayRef({2, 16, 11}));
  for (int64_t t : {0, 5, 14}) {
    auto changed = idx.clone();
    changed.slice(1, t + 1) = (changed.slice(1, t + 1) + 1) % 11;
    auto other = model(changed);
    EXPECT_TRUE(torch::equal(logits.slice(1, 0, t + 1), other.slice(1, 0, t + 1))) << t;
    EXPECT_FALSE(torch::allclose(logits.slice(1, t + 1), other.slice(1, t + 1))) << t;
  }
}

TEST(TransformerLM, BackpropLearnsTheQueryKeyAndValueWeights) {
  torch::manual_seed(1);
  TransformerLM model(small_config());
  auto idx = torch::randint(0, 11, {4, 9}, torch::kLong);
  auto targets = torch::randint(0, 11, {4, 9}, torch::kLong);
  auto params = model->named_parameters();
  std::vector<std::string> names;
  for (int layer = 0; layer < 2; ++layer)
    for (const char* w : {"w_q", "w_k", "w_v", "w_o"})
      names.push_back("blocks." + std::to_string(layer) + ".attn." + w + ".weight");
  std::vector<torch::Tensor> before;
  for (auto& n : names) {
    ASSERT_TRUE(params.contains(n)) << n;
    before.push_back(params[n].detach().clone());
  }
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-3));
  auto loss = TransformerLM::Impl::loss(model(idx), targets);
  loss.backward();
  for (auto& n : names) {
    ASSERT_TRUE(params[n].grad().defined()) << n;
    EXPECT_GT(params[n].grad().abs().sum().item<float>(), 0.0f) << n;
  }
  opt.step();
  for (size_t i = 0; i < names.size(); ++i)
    EXPECT_FALSE(torch::equal(before[i], params[names[i]].detach())) << names[i];
}

TEST(TransformerLM, MemorisesAShortSequence) {
  torch::manual_seed(42);
  ModelConfig c = small_config();
  c.d_model = 32;
  TransformerLM model(c);
  auto seq = torch::tensor({3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2}, torch::kLong);
  auto idx = seq.slice(0, 0, 16).unsqueeze(0), targets = seq.slice(0, 1, 17).unsqueeze(0);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(3e-3));
  double loss_value = 1e9;
  int step = 0;
  for (; step < 300 && loss_value >= 0.05; ++step) {
    opt.zero_grad();
    auto loss = TransformerLM::Impl::loss(model(idx), targets);
    loss.backward();
    opt.step();
    loss_value = loss.item<double>();
  }
  EXPECT_LT(loss_value, 0.05) << "after " << step << " steps";
}

TEST(TransformerLM, ParameterCountMatchesClosedForm) {
  std::vector<ModelConfig> configs;
  ModelConfig a = small_config();
  configs.push_back(a);
  ModelConfig b = a;
  b.bias = false;
  b.tie_weights = false;
  b.d_ff = 40;
  configs.push_back(b);
  ModelConfig c = a;
  c.positional_encoding = qkv::PositionalEncodingKind::kLearned;
  c.n_layer = 3;
  configs.push_back(c);
  ModelConfig d;  // 4 layers, 128 channels, vocab 65: the Shakespeare char model, tied
  d.tie_weights = true;
  configs.push_back(d);
  ModelConfig e;  // the same, untied (the default)
  configs.push_back(e);
  for (const auto& cfg : configs) {
    TransformerLM model(cfg);
    int64_t counted = 0;
    for (auto& p : model->parameters()) counted += p.numel();
    EXPECT_EQ(counted, cfg.parameter_count());
  }
  // 4 layers * (2 norms 2*128 + attention 4*(128*128+128) + ffn 2*128*512+512+128) + emb + ln_f
  EXPECT_EQ(d.parameter_count(),
            4 * (2 * 256 + 4 * (16384 + 128) + 2 * 65536 + 640) + 65 * 128 + 256);
}

TEST(TransformerLM, TiedHeadSharesStorageWithTheEmbedding) {
  ModelConfig t = small_config();
  t.tie_weights = true;
  TransformerLM tied(t);
  EXPECT_EQ(tied->lm_head_weight().data_ptr(), tied->tok_emb->weight.data_ptr());
  ModelConfig c = small_config();
  c.tie_weights = false;
  TransformerLM untied(c);
  EXPECT_NE(untied->lm_head_weight().data_ptr(), untied->tok_emb->weight.data_ptr());
  // A gradient through the head reaches the embedding table only when tied.
  auto idx = torch::zeros({1, 1}, torch::kLong);  // embeds token 0 only
  auto logits = tied(idx);
  logits[0][0][5].backward();
  EXPECT_GT(tied->tok_emb->weight.grad()[5].abs().sum().item<float>(), 0.0f);
}

TEST(ModelConfig, ValidateNamesTheFieldAndValue) {
  auto expect_error = [](ModelConfig c, const std::string& needle) {
    try {
      c.validate();
      ADD_FAILURE() << "no error for " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  ModelConfig c = small_config();
  c.n_head = 3;
  expect_error(c, "model.d_model (16) must be divisible by model.n_head (3)");
  c = small_config();
  c.n_layer = 0;
  expect_error(c, "model.n_layer must be positive, got 0");
  c = small_config();
  c.vocab_size = -5;
  expect_error(c, "model.vocab_size must be positive, got -5");
  c = small_config();
  c.dropout = 1.0;
  expect_error(c, "model.dropout must be in [0, 1)");
  c = small_config();
  c.dropout = -0.1;
  expect_error(c, "model.dropout must be in [0, 1)");
  EXPECT_NO_THROW(small_config().validate());
}

TEST(TransformerLM, OverlongInputIsAClearError) {
  TransformerLM model(small_config());
  auto idx = torch::zeros({1, 17}, torch::kLong);
  try {
    model(idx);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "sequence of 17 tokens exceeds the model's context length (block_size 16)");
  }
}

}  // namespace
