// qkv's own CPU kernels (src/kernels/), each against the reference path it replaces (the plain
// LibTorch modules) and against a float64 computation written out here, forward and gradients,
// at odd sizes: T = 1, one head, head sizes that are not a multiple of the 16-float vector.
#include <gtest/gtest.h>

#include <cmath>

#include "qkv/kernels/causal_attention.h"
#include "qkv/kernels/kernel_path.h"
#include "qkv/model/multi_head_self_attention.h"
#include "qkv/train/adamw_step.h"
#include "qkv/train/optimizer_setup.h"
#include "test_support.h"

namespace {

using qkv::KernelPath;
using qkv::MultiHeadSelfAttention;
using qkv::MultiHeadSelfAttentionOptions;

struct AttentionSize {
  int64_t B, T, C, H;
};
// T = 1; one head; D = 8, 16, 20, 32, 64; T not a power of two; T = 64.
const AttentionSize kSizes[] = {{1, 1, 8, 1},   {2, 9, 32, 4}, {3, 17, 48, 3},
                                {2, 33, 40, 2}, {1, 5, 64, 1}, {2, 64, 128, 2}};

// float64 softmax(Q K^T * scale, future masked) * keep / keep_prob, times V, per head: the
// formula with nothing fused, in (B, T, C) layout like the kernel's.
torch::Tensor attention_f64(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            int64_t H, double scale, const torch::Tensor& keep, double keep_prob) {
  const int64_t B = q.size(0), T = q.size(1), C = q.size(2);
  auto heads = [&](const torch::Tensor& x) {
    return x.to(torch::kFloat64).view({B, T, H, C / H}).transpose(1, 2);
  };
  auto scores = torch::matmul(heads(q), heads(k).transpose(-2, -1)) * scale;
  const auto future = torch::ones({T, T}, torch::kBool).triu(1);
  auto att = torch::softmax(scores.masked_fill(future, -INFINITY), -1);
  if (keep.defined()) att = att * keep.to(torch::kFloat64) / keep_prob;
  return torch::matmul(att, heads(v)).transpose(1, 2).reshape({B, T, C});
}

double max_relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  const auto w = want.to(torch::kFloat64);
  return ((got.to(torch::kFloat64) - w).abs().max() / w.abs().max().clamp_min(1e-30))
      .item<double>();
}

// Output and the gradients of q, k, v against float64 autograd of the written-out formula.
void expect_kernel_matches_f64(const AttentionSize& s, bool dropout) {
  torch::manual_seed(s.B * 1000 + s.T * 10 + s.H);
  auto make = [&] { return torch::randn({s.B, s.T, s.C}, torch::requires_grad()); };
  const auto q = make(), k = make(), v = make();
  const auto dy = torch::randn({s.B, s.T, s.C});
  const double scale = 1.0 / std::sqrt(double(s.C / s.H)), keep_prob = dropout ? 0.7 : 1.0;
  torch::Tensor keep;
  if (dropout) keep = torch::empty({s.B, s.H, s.T, s.T}, torch::kUInt8).bernoulli_(keep_prob);

  const auto y = qkv::causal_attention(q, k, v, s.H, scale, keep, keep_prob);
  const auto grads = torch::autograd::grad({y}, {q, k, v}, {dy});
  const auto q64 = q.detach().to(torch::kFloat64).requires_grad_(),
             k64 = k.detach().to(torch::kFloat64).requires_grad_(),
             v64 = v.detach().to(torch::kFloat64).requires_grad_();
  const auto y64 = attention_f64(q64, k64, v64, s.H, scale, keep, keep_prob);
  const auto grads64 = torch::autograd::grad({y64}, {q64, k64, v64}, {dy.to(torch::kFloat64)});

  const std::string at = "B" + std::to_string(s.B) + " T" + std::to_string(s.T) + " C" +
                         std::to_string(s.C) + " H" + std::to_string(s.H);
  EXPECT_LT(max_relative_error(y, y64), 1e-5) << at;
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i)
    EXPECT_LT(max_relative_error(grads[i], grads64[i]), 1e-5) << names[i] << " " << at;
}

TEST(CausalAttentionKernel, ForwardAndGradientsEqualFloat64) {
  for (const auto& s : kSizes) expect_kernel_matches_f64(s, /*dropout=*/false);
}

TEST(CausalAttentionKernel, WithADropoutMaskEqualsFloat64) {
  for (const auto& s : kSizes) expect_kernel_matches_f64(s, /*dropout=*/true);
}

// The module with kernels(kFused) against itself with kernels(kReference): output, the input's
// gradient and every parameter's gradient, to 1e-5 relative.
TEST(CausalAttentionKernel, FusedModuleEqualsTheReferenceModule) {
  for (const auto& s : kSizes) {
    torch::manual_seed(7 + s.T);
    MultiHeadSelfAttention attn(MultiHeadSelfAttentionOptions(s.C, s.H));
    attn->train();
    const auto x = torch::randn({s.B, s.T, s.C}, torch::requires_grad());
    const auto dy = torch::randn({s.B, s.T, s.C});
    auto run = [&](KernelPath path) {
      attn->options.kernels(path);
      std::vector<torch::Tensor> inputs{x};
      for (auto& p : attn->parameters()) inputs.push_back(p);
      auto out = torch::autograd::grad({attn->forward(x)}, inputs, {dy});
      out.push_back(attn->forward(x).detach());
      return out;
    };
    const auto fused = run(KernelPath::kFused), reference = run(KernelPath::kReference);
    ASSERT_EQ(fused.size(), reference.size());
    // 1e-5 of the tensor's largest value, plus 1e-6: the key bias's gradient is zero in exact
    // arithmetic (adding q.b to every score of a row leaves its softmax unchanged), so both paths
    // give rounding noise there, which no relative measure can compare.
    for (size_t i = 0; i < fused.size(); ++i) {
      const double error = (fused[i] - reference[i]).abs().max().item<double>();
      EXPECT_LE(error, 1e-5 * reference[i].abs().max().item<double>() + 1e-6)
          << "tensor " << i << " at T" << s.T << " H" << s.H;
    }
  }
}

// Where the kernel does not apply the module keeps the reference formula: asking for the
// attention weights, a non-causal layer, float64 input.
TEST(CausalAttentionKernel, TheModuleFallsBackWhereTheKernelDoesNotApply) {
  torch::manual_seed(8);
  MultiHeadSelfAttention attn(MultiHeadSelfAttentionOptions(16, 2).kernels(KernelPath::kFused));
  attn->eval();
  const auto x = torch::randn({2, 6, 16});
  torch::Tensor weights;
  const auto with_weights = attn->forward(x, &weights);
  ASSERT_TRUE(weights.defined());
  EXPECT_LT(max_relative_error(attn->forward(x), with_weights), 1e-5);
  EXPECT_FALSE(qkv::causal_attention_supports(x.to(torch::kFloat64)));
  attn->to(torch::kFloat64);
  EXPECT_EQ(attn->forward(x.to(torch::kFloat64)).scalar_type(), torch::kFloat64);
}

// Attention dropout in the fused module: in eval mode nothing is dropped (equal to the
// reference); in training some weights are, and about 1 - p of them survive.
TEST(CausalAttentionKernel, DropoutActsOnlyInTraining) {
  torch::manual_seed(9);
  MultiHeadSelfAttention attn(
      MultiHeadSelfAttentionOptions(32, 4).dropout(0.5).kernels(KernelPath::kFused));
  const auto x = torch::randn({2, 16, 32});
  attn->eval();
  const auto fused_eval = attn->forward(x);
  attn->options.kernels(KernelPath::kReference);
  EXPECT_LT(max_relative_error(fused_eval, attn->forward(x)), 1e-5);
  attn->options.kernels(KernelPath::kFused);
  attn->train();
  EXPECT_GT((attn->forward(x) - fused_eval).abs().max().item<double>(), 1e-3);
}

TEST(CausalAttentionKernel, RefusesWhatItCannotTake) {
  const auto x = torch::randn({1, 4, 8});
  EXPECT_THROW(qkv::causal_attention(x, x, x, 3, 1.0), c10::Error);  // 8 % 3
  EXPECT_THROW(qkv::causal_attention(x, x, x.narrow(1, 0, 3), 2, 1.0), c10::Error);
  EXPECT_THROW(qkv::causal_attention(x, x, x, 2, 1.0, torch::ones({1, 2, 4, 4})), c10::Error);
  EXPECT_THROW(qkv::kernel_path_from_string("fast"), std::invalid_argument);
  EXPECT_EQ(qkv::kernel_path_from_string(qkv::to_string(KernelPath::kFused)), KernelPath::kFused);
}

// adamw_step with the fused path (on LibTorch 1.13 qkv's one-pass loop, on 2.4+ LibTorch's fused
// kernel) against LibTorch's own optimizer.step(), five steps from the same gradients, the
// weights levelled after each so that rounding does not compound; weight decay on and off.
TEST(CpuAdamW, EqualsLibTorchsAdamWStepForStep) {
  qkv::OptimConfig o;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  auto a = qkv::testing::random_model(11, 8, 16, 9), b = qkv::testing::random_model(11, 8, 16, 9);
  const auto start = a->parameters()[0].clone();
  auto opt_a = qkv::make_adamw(a, o), opt_b = qkv::make_adamw(b, o);
  for (uint64_t step = 0; step < 5; ++step) {
    for (auto* m : {&a, &b}) {
      torch::manual_seed(step);
      const auto idx = torch::randint(0, 11, {3, 8}, torch::kLong);
      qkv::TransformerLMImpl::loss((*m)(idx), torch::randint(0, 11, {3, 8}, torch::kLong))
          .backward();
    }
    qkv::adamw_step(*opt_a, KernelPath::kFused);
    opt_b->step();
    opt_a->zero_grad();
    opt_b->zero_grad();
    EXPECT_LT(qkv::testing::max_param_difference(a, b), 1e-6) << "step " << step;
    qkv::testing::copy_parameters(a, b);
  }
  EXPECT_GT((a->parameters()[0] - start).abs().max().item<double>(), 1e-3);  // it moved
  for (auto& entry : opt_a->state())  // and counted its steps as LibTorch does
    EXPECT_EQ(static_cast<torch::optim::AdamWParamState&>(*entry.second).step(), 5);
}

}  // namespace
