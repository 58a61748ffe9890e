// The fused paths LibTorch 2.x offers, each against the explicit computation it replaces:
// scaled_dot_product_attention against softmax(QK^T/sqrt(d_k))V written out, the fused AdamW
// kernel against torch::optim::AdamW, foreach clipping against clip_grad_norm_. On LibTorch 1.13
// the fused paths do not exist and these tests skip.
#include <gtest/gtest.h>

#include <torch/nn/utils/clip_grad.h>

#include "qkv/model/multi_head_self_attention.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/runtime/torch_compat.h"
#include "qkv/train/adamw.h"
#include "qkv/train/optimizer_setup.h"
#include "test_support.h"

namespace {

using qkv::MultiHeadSelfAttention;
using qkv::MultiHeadSelfAttentionOptions;

#define SKIP_WITHOUT_SDPA()                                    \
  if (!qkv::sdpa_available())                                  \
  GTEST_SKIP() << "LibTorch " TORCH_VERSION                    \
                  " has no scaled_dot_product_attention with " \
                  "a scale (2.1+): the explicit path is the only one"

#define SKIP_WITHOUT_FUSED_ADAMW()          \
  if (!qkv::fused_adamw_available())        \
  GTEST_SKIP() << "LibTorch " TORCH_VERSION \
                  " has no fused AdamW kernel for the CPU (2.4+): optimizer.step() is used"

// The explicit path runs when the attention weights are asked for; the fused one otherwise.
void expect_paths_agree(MultiHeadSelfAttention& attn, const torch::Tensor& x) {
  const auto [explicit_y, weights] = attn->forward_with_weights(x);
  const auto fused_y = attn->forward(x);
  ASSERT_TRUE(weights.defined());
  EXPECT_TRUE(torch::allclose(fused_y, explicit_y, 1e-5, 1e-6))
      << (fused_y - explicit_y).abs().max().item<double>();
}

TEST(FusedAttention, EqualsTheExplicitFormulaCausalAndNot) {
  SKIP_WITHOUT_SDPA();
  for (bool causal : {true, false})
    for (bool scale : {true, false}) {
      torch::manual_seed(3);
      MultiHeadSelfAttention attn(
          MultiHeadSelfAttentionOptions(32, 4).causal(causal).scale_scores(scale));
      attn->eval();
      expect_paths_agree(attn, torch::randn({3, 9, 32}));
    }
}

TEST(FusedAttention, EqualsTheExplicitFormulaWithACache) {
  SKIP_WITHOUT_SDPA();
  torch::NoGradGuard no_grad;
  torch::manual_seed(4);
  MultiHeadSelfAttention attn(MultiHeadSelfAttentionOptions(32, 4));
  attn->eval();
  const auto x = torch::randn({2, 12, 32});
  // Prefill 5 positions, then 4 at once (the offset mask), then 1 (no mask), both paths.
  qkv::KVCache fused_cache(16), explicit_cache(16);
  for (auto [from, to] : {std::pair<int64_t, int64_t>{0, 5}, {5, 9}, {9, 10}}) {
    const auto part = x.slice(1, from, to);
    const auto fused_y = attn->forward(part, &fused_cache);
    const auto explicit_y = std::get<0>(attn->forward_with_weights(part, &explicit_cache));
    EXPECT_TRUE(torch::allclose(fused_y, explicit_y, 1e-5, 1e-6)) << from << ".." << to;
  }
  // And the cached result equals the whole sequence at once.
  const auto whole = attn->forward(x.slice(1, 0, 10));
  qkv::KVCache cache(16);
  attn->forward(x.slice(1, 0, 9), &cache);
  EXPECT_TRUE(
      torch::allclose(attn->forward(x.slice(1, 9, 10), &cache), whole.slice(1, 9, 10), 1e-5, 1e-6));
}

TEST(FusedAttention, GradientsEqualTheExplicitFormulas) {
  SKIP_WITHOUT_SDPA();
  torch::manual_seed(5);
  MultiHeadSelfAttention attn(MultiHeadSelfAttentionOptions(16, 2));
  attn->train();  // dropout is 0: training mode differs only in the path's bookkeeping
  const auto x = torch::randn({2, 7, 16}, torch::requires_grad());
  auto grads = [&](bool explicit_path) {
    attn->zero_grad();
    x.mutable_grad() = torch::Tensor();
    const auto y = explicit_path ? std::get<0>(attn->forward_with_weights(x)) : attn->forward(x);
    (y.pow(2).sum()).backward();
    std::vector<torch::Tensor> g{x.grad().clone()};
    for (auto& p : attn->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  const auto a = grads(true), b = grads(false);
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-4, 1e-5)) << "gradient " << i;
}

// Two models, same start; `steps` AdamW updates through `fused`/plain steps in turn.
struct TwinModels {
  qkv::TransformerLM a{nullptr}, b{nullptr};
  std::unique_ptr<qkv::AdamW> opt_a, opt_b;  // LibTorch's route
  TwinModels() {
    qkv::OptimConfig o;
    o.lr = 1e-2;
    o.weight_decay = 0.1;
    a = qkv::testing::random_model(11, 8, 16, 9);
    b = qkv::testing::random_model(11, 8, 16, 9);
    opt_a = qkv::make_adamw(a, o);
    opt_b = qkv::make_adamw(b, o);
  }
  static void backward(qkv::TransformerLM& m, uint64_t seed) {
    torch::manual_seed(seed);
    const auto idx = torch::randint(0, 11, {3, 8}, torch::kLong);
    qkv::TransformerLMImpl::loss(m(idx), torch::randint(0, 11, {3, 8}, torch::kLong)).backward();
  }
  // One step of both from the same weights and gradients: `fused_a` says whether model a takes
  // qkv::AdamW's step (LibTorch's fused kernel); b always takes torch::optim::AdamW::step().
  // Returns the largest weight difference, in units in the last place
  // (max_param_difference_in_ulps).
  double step_both(uint64_t seed, bool fused_a) {
    backward(a, seed);
    backward(b, seed);
    if (fused_a)
      opt_a->step();
    else
      opt_a->torch::optim::AdamW::step();
    opt_b->torch::optim::AdamW::step();
    opt_a->zero_grad();
    opt_b->zero_grad();
    const double difference = qkv::testing::max_param_difference_in_ulps(a, b);
    qkv::testing::copy_parameters(a, b);  // the next step starts level again
    return difference;
  }
};

TEST(FusedAdamW, EqualsLibTorchsAdamWAtEveryStep) {
  SKIP_WITHOUT_FUSED_ADAMW();
  TwinModels t;
  for (uint64_t s = 0; s < 4; ++s)  // steps 1-4: the bias corrections change every step
    EXPECT_LE(t.step_both(s, true), 2) << "step " << s + 1;
  // The optimizer's own state, as checkpoints store it: one entry per parameter, 4 steps each.
  EXPECT_EQ(t.opt_a->state().size(), t.a->parameters().size());
  for (auto& entry : t.opt_a->state())
    EXPECT_EQ(static_cast<torch::optim::AdamWParamState&>(*entry.second).step(), 4);
}

TEST(FusedAdamW, MixesWithThePlainStepThroughTheSameState) {
  SKIP_WITHOUT_FUSED_ADAMW();
  // Fused, fused, plain against plain three times: the fused step keeps its moments and step
  // count where optimizer.step() (and a checkpoint) finds them.
  TwinModels t;
  for (uint64_t s = 0; s < 3; ++s) EXPECT_LE(t.step_both(s, s < 2), 2) << "step " << s + 1;
  EXPECT_EQ(t.opt_a->state().size(), t.a->parameters().size());
}

TEST(FusedAdamW, ParametersAtDifferentStepCountsEachTakeTheirOwnCount) {
  SKIP_WITHOUT_FUSED_ADAMW();
  TwinModels t;
  // Step 1 without the first parameter's gradient: its count lags the rest of its group.
  TwinModels::backward(t.a, 0);
  TwinModels::backward(t.b, 0);
  t.a->parameters()[0].mutable_grad() = torch::Tensor();
  t.b->parameters()[0].mutable_grad() = torch::Tensor();
  t.opt_a->step();
  t.opt_b->torch::optim::AdamW::step();
  t.opt_a->zero_grad();
  t.opt_b->zero_grad();
  qkv::testing::copy_parameters(t.a, t.b);
  // Step 2 meets mixed counts: every group must still be updated exactly once.
  EXPECT_LE(t.step_both(1, true), 2);
}

TEST(FusedAdamW, TheModelMovesAtAll) {
  SKIP_WITHOUT_FUSED_ADAMW();
  TwinModels t;
  const auto before = t.a->parameters()[0].detach().clone();
  TwinModels::backward(t.a, 1);
  t.opt_a->step();
  EXPECT_GT((t.a->parameters()[0] - before).abs().max().item<double>(), 1e-4);
}

TEST(ClipGradients, EqualsClipGradNorm) {
  for (double max_norm : {0.05, 1e9}) {
    TwinModels t;
    TwinModels::backward(t.a, 2);
    TwinModels::backward(t.b, 2);
    const double ours = qkv::clip_gradients(t.a->parameters(), max_norm);
    const double theirs = torch::nn::utils::clip_grad_norm_(t.b->parameters(), max_norm);
    EXPECT_NEAR(ours, theirs, 1e-6 * theirs);
    auto pa = t.a->parameters(), pb = t.b->parameters();
    for (size_t i = 0; i < pa.size(); ++i)
      EXPECT_TRUE(torch::allclose(pa[i].grad(), pb[i].grad(), 1e-6, 1e-9)) << i;
  }
}

}  // namespace
