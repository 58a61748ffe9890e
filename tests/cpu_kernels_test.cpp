// qkv's own CPU kernels (src/kernels/), each against the reference path it replaces (the plain
// LibTorch modules) and against a float64 computation written out here, forward and gradients,
// at odd sizes: T = 1, one head, head sizes that are not a multiple of the 16-float vector.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/nn/utils/clip_grad.h>

#include "qkv/kernels/accelerate.h"
#include "qkv/kernels/adamw_update.h"
#include "qkv/kernels/causal_attention.h"
#include "qkv/kernels/cross_entropy.h"
#include "qkv/kernels/dropout.h"
#include "qkv/kernels/fused_modules.h"
#include "qkv/kernels/gelu.h"
#include "qkv/kernels/kernel_path.h"
#include "qkv/kernels/layer_norm.h"
#include "qkv/model/feed_forward.h"
#include "qkv/model/layer_norm.h"
#include "qkv/model/multi_head_self_attention.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/runtime/autocast_scope.h"
#include "qkv/train/adamw.h"
#include "qkv/train/optimizer_setup.h"
#include "test_support.h"

namespace {

using qkv::KernelPath;
using qkv::MultiHeadSelfAttention;
using qkv::MultiHeadSelfAttentionImpl;
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

  // The kernel's one (B, T, 3C) input, Q | K | V side by side; the gradients reach q, k, v
  // through cat's backward, which reads each block of the kernel's one gradient.
  const auto y = qkv::causal_attention(torch::cat({q, k, v}, 2), s.H, scale, keep, keep_prob);
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

// The engine's module (FusedSelfAttention on kFused) against the reference module it was made
// from, sharing its parameters: output, the input's gradient and every parameter's gradient, to
// 1e-5 relative.
TEST(CausalAttentionKernel, FusedModuleEqualsTheReferenceModule) {
  for (const auto& s : kSizes) {
    torch::manual_seed(7 + s.T);
    MultiHeadSelfAttention attn(MultiHeadSelfAttentionOptions(s.C, s.H));
    attn->train();
    qkv::FusedSelfAttention fused_attn(*attn, KernelPath::kFused);
    const auto x = torch::randn({s.B, s.T, s.C}, torch::requires_grad());
    const auto dy = torch::randn({s.B, s.T, s.C});
    auto run = [&](MultiHeadSelfAttentionImpl& module) {
      std::vector<torch::Tensor> inputs{x};
      for (auto& p : attn->parameters()) inputs.push_back(p);
      auto out = torch::autograd::grad({module.forward(x)}, inputs, {dy});
      out.push_back(module.forward(x).detach());
      return out;
    };
    const auto fused = run(*fused_attn), reference = run(*attn);
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
// attention weights, bf16 autocast, float64 input.
TEST(CausalAttentionKernel, TheModuleFallsBackWhereTheKernelDoesNotApply) {
  torch::manual_seed(8);
  MultiHeadSelfAttention reference(MultiHeadSelfAttentionOptions(16, 2));
  MultiHeadSelfAttention attn(std::shared_ptr<MultiHeadSelfAttentionImpl>(
      std::make_shared<qkv::FusedSelfAttentionImpl>(*reference, KernelPath::kFused)));
  attn->eval();
  const auto x = torch::randn({2, 6, 16});
  const auto [with_weights, weights] = attn->forward_with_weights(x);
  ASSERT_TRUE(weights.defined());
  EXPECT_LT(max_relative_error(attn->forward(x), with_weights), 1e-5);
  EXPECT_FALSE(qkv::causal_attention_supports(x.to(torch::kFloat64)));
  {  // bf16 autocast (runtime.dtype: bf16): bf16 projections, so the reference, not an error
    qkv::AutocastScope bf16(true);
    EXPECT_TRUE(torch::equal(attn->forward(x), reference->forward(x)));
  }
  attn->to(torch::kFloat64);
  EXPECT_EQ(attn->forward(x.to(torch::kFloat64)).scalar_type(), torch::kFloat64);
}

// Attention dropout in the fused module: in eval mode nothing is dropped (equal to the
// reference); in training some weights are, and about 1 - p of them survive.
TEST(CausalAttentionKernel, DropoutActsOnlyInTraining) {
  torch::manual_seed(9);
  MultiHeadSelfAttention reference(MultiHeadSelfAttentionOptions(32, 4).dropout(0.5));
  qkv::FusedSelfAttention attn(*reference, KernelPath::kFused);
  const auto x = torch::randn({2, 16, 32});
  attn->eval();
  reference->eval();
  const auto fused_eval = attn->forward(x);
  EXPECT_LT(max_relative_error(fused_eval, reference->forward(x)), 1e-5);
  attn->train();
  EXPECT_GT((attn->forward(x) - fused_eval).abs().max().item<double>(), 1e-3);
}

TEST(CausalAttentionKernel, RefusesWhatItCannotTake) {
  const auto x = torch::randn({1, 4, 24});                                                // C = 8
  EXPECT_THROW(qkv::causal_attention(x, 3, 1.0), c10::Error);                             // 8 % 3
  EXPECT_THROW(qkv::causal_attention(x.narrow(2, 0, 8), 2, 1.0), c10::Error);             // not 3C
  EXPECT_THROW(qkv::causal_attention(x, 2, 1.0, torch::ones({1, 2, 4, 4})), c10::Error);  // float
  EXPECT_THROW(qkv::causal_attention(x[0], 2, 1.0), c10::Error);                          // (T, 3C)
  EXPECT_THROW(qkv::kernel_path_from_string("fast"), std::invalid_argument);
  EXPECT_EQ(qkv::kernel_path_from_string(qkv::to_string(KernelPath::kFused)), KernelPath::kFused);
  EXPECT_EQ(qkv::kernel_path_from_string("auto"), qkv::faster_cpu_kernel_path());
  // With dropout, qkv's own draws (all threads) beat LibTorch's (one) on every version.
  EXPECT_EQ(qkv::kernel_path_from_string("auto", /*dropout=*/true), KernelPath::kFused);
}

// Gradients of both models (vocabulary 11, context 8) on the same random batch, from `seed`.
void backward_on_one_batch(qkv::TransformerLM& a, qkv::TransformerLM& b, uint64_t seed) {
  for (auto* m : {&a, &b}) {
    torch::manual_seed(seed);
    const auto idx = torch::randint(0, 11, {3, 8}, torch::kLong);
    qkv::TransformerLMImpl::loss((*m)(idx), torch::randint(0, 11, {3, 8}, torch::kLong)).backward();
  }
}

// qkv::AdamW's flat route (qkv's one-pass loop) against LibTorch's own AdamW::step(), five steps
// from the same gradients, the weights levelled after each so that rounding does not compound;
// weight decay on and off.
TEST(CpuAdamW, EqualsLibTorchsAdamWStepForStep) {
  qkv::OptimConfig o;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  auto a = qkv::testing::random_model(11, 8, 16, 9), b = qkv::testing::random_model(11, 8, 16, 9);
  const auto start = a->parameters()[0].clone();
  auto opt_a = qkv::make_adamw(a, o, qkv::AdamW::Route::kFlat), opt_b = qkv::make_adamw(b, o);
  for (uint64_t step = 0; step < 5; ++step) {
    backward_on_one_batch(a, b, step);
    opt_a->step();
    opt_b->torch::optim::AdamW::step();
    opt_a->zero_grad();
    opt_b->zero_grad();
    EXPECT_LT(qkv::testing::max_param_difference(a, b), 1e-6) << "step " << step;
    qkv::testing::copy_parameters(a, b);
  }
  EXPECT_GT((a->parameters()[0] - start).abs().max().item<double>(), 1e-3);  // it moved
  for (auto& entry : opt_a->state())  // and counted its steps as LibTorch does
    EXPECT_EQ(static_cast<torch::optim::AdamWParamState&>(*entry.second).step(), 5);
}

// adamw_update and gradient_sum_of_squares over spans of odd sizes, empty ones among them, that
// together exceed the threads' chunks (so that chunks start and end inside spans): against
// AdamW's formula in float64 tensor ops and the float64 sum of squares.
TEST(AdamWUpdateKernel, EqualsTheFormulaInFloat64AcrossSpanAndChunkBoundaries) {
  torch::manual_seed(5);
  const int64_t sizes[] = {1, 17, 0, 40001, 3, 20000, 0, 65};
  std::vector<torch::Tensor> p, g, m, v;
  std::vector<qkv::AdamWSpan> spans;
  double want_sum = 0;
  for (const int64_t n : sizes) {
    p.push_back(torch::randn({n}));
    g.push_back(torch::randn({n}) * 0.1);
    m.push_back(torch::randn({n}) * 0.01);
    v.push_back(torch::rand({n}) * 0.01);
    want_sum += g.back().to(torch::kFloat64).pow(2).sum().item<double>();
    qkv::AdamWSpan s;
    s.param = p.back().data_ptr<float>();
    s.grad = g.back().data_ptr<float>();
    s.exp_avg = m.back().data_ptr<float>();
    s.exp_avg_sq = v.back().data_ptr<float>();
    s.n = n;
    s.decay = n % 2 ? 0.999f : 1.0f;  // decayed and not
    s.beta1 = 0.9f, s.beta2 = 0.99f, s.one_minus_beta1 = 0.1f, s.one_minus_beta2 = 0.01f;
    s.root_bias2 = std::sqrt(1 - 0.99f * 0.99f * 0.99f);  // step 3
    s.eps = 1e-8f;
    s.step_size = 1e-2f / (1 - 0.9f * 0.9f * 0.9f);
    spans.push_back(s);
  }
  EXPECT_NEAR(qkv::gradient_sum_of_squares(spans), want_sum, 1e-9 * want_sum);
  const float scale = 0.5f;
  std::vector<torch::Tensor> want_p, want_g, want_m, want_v;
  for (size_t i = 0; i < spans.size(); ++i) {
    const auto& s = spans[i];
    const auto gd = g[i].to(torch::kFloat64) * double(scale);
    const auto md = m[i].to(torch::kFloat64) * s.beta1 + gd * s.one_minus_beta1;
    const auto vd = v[i].to(torch::kFloat64) * s.beta2 + gd * gd * s.one_minus_beta2;
    want_p.push_back(p[i].to(torch::kFloat64) * s.decay -
                     s.step_size * md / (vd.sqrt() / s.root_bias2 + s.eps));
    want_g.push_back(gd);
    want_m.push_back(md);
    want_v.push_back(vd);
  }
  qkv::adamw_update(spans, scale);
  for (size_t i = 0; i < spans.size(); ++i) {
    const std::string what = "span " + std::to_string(i);
    EXPECT_TRUE(torch::allclose(p[i].to(torch::kFloat64), want_p[i], 1e-5, 1e-6)) << what;
    EXPECT_TRUE(torch::allclose(g[i].to(torch::kFloat64), want_g[i], 0, 0)) << what;  // x * 0.5
    EXPECT_TRUE(torch::allclose(m[i].to(torch::kFloat64), want_m[i], 1e-5, 1e-8)) << what;
    EXPECT_TRUE(torch::allclose(v[i].to(torch::kFloat64), want_v[i], 1e-5, 1e-10)) << what;
  }
}

// AdamW::clip_and_step on the flat route (one norm pass and one update pass over all parameters
// at once) against clip_grad_norm_ then LibTorch's AdamW::step(): norms, clipped
// gradients and weights, when it clips, when it does not, and when the clipped set is not the
// optimizer's (half the parameters: the two steps in turn must still be what it does).
TEST(CpuAdamW, ClipAndStepEqualsClipGradNormThenLibTorchsStep) {
  qkv::OptimConfig o;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  for (const double max_norm : {0.05, 1e9, double(INFINITY)})
    for (const bool all : {true, false}) {
      const std::string what = "max_norm " + std::to_string(max_norm) + (all ? "" : ", half");
      auto a = qkv::testing::random_model(11, 8, 16, 9),
           b = qkv::testing::random_model(11, 8, 16, 9);
      auto opt_a = qkv::make_adamw(a, o, qkv::AdamW::Route::kFlat), opt_b = qkv::make_adamw(b, o);
      auto pa = a->parameters(), pb = b->parameters();
      if (!all) pa.resize(pa.size() / 2), pb.resize(pb.size() / 2);
      for (uint64_t step = 0; step < 3; ++step) {
        backward_on_one_batch(a, b, step);
        const double ours = opt_a->clip_and_step(pa, max_norm);
        const double theirs = torch::nn::utils::clip_grad_norm_(pb, max_norm);
        EXPECT_NEAR(ours, theirs, 1e-6 * theirs) << what;
        for (size_t i = 0; i < pa.size(); ++i)  // left scaled, as clip_grad_norm_ leaves them
          EXPECT_TRUE(torch::allclose(pa[i].grad(), pb[i].grad(), 1e-6, 1e-9)) << what << " " << i;
        opt_b->torch::optim::AdamW::step();
        opt_a->zero_grad();
        opt_b->zero_grad();
        // LibTorch 2.x's step rounds in another order than 1.13's: 4.2 ulps seen on 2.11.
        EXPECT_LE(qkv::testing::max_param_difference_in_ulps(a, b), 8) << what << " step " << step;
        qkv::testing::copy_parameters(a, b);
      }
      for (auto& entry : opt_a->state())
        EXPECT_EQ(static_cast<torch::optim::AdamWParamState&>(*entry.second).step(), 3) << what;
    }
}

// --- GELU --------------------------------------------------------------------------------------

// Each element within 1e-6 + 1e-5 of the float64 value: elementwise, so small values in the
// tails are held to their own size, not to the tensor's largest.
void expect_elementwise_near(const torch::Tensor& got, const torch::Tensor& want,
                             const std::string& what, double factor = 1) {
  const auto w = want.to(torch::kFloat64);
  const auto excess = (got.to(torch::kFloat64) - w).abs() - factor * (1e-6 + 1e-5 * w.abs());
  EXPECT_LE(excess.max().item<double>(), 0.0) << what;
}

torch::Tensor gelu_f64(const torch::Tensor& x) {  // x * Phi(x) with the exact erf
  return 0.5 * x * (1 + torch::erf(x / std::sqrt(2.0)));
}

// Forward and gradient against float64 autograd of the written-out formula, and against
// PyTorch's own torch::gelu, over random values and the tails and the zero crossing, at sizes
// that are not a multiple of the vector or of a thread's share.
TEST(GeluKernel, ForwardAndGradientEqualFloat64AndTorchGelu) {
  torch::manual_seed(21);
  const auto edges = torch::tensor({0.0f, 1e-4f, -1e-4f, 0.5f, -0.5f, 3.0f, -3.0f, 5.0f, -5.0f,
                                    9.0f, -9.0f, 30.0f, -30.0f, 100.0f, -100.0f});
  for (const auto& x0 : {torch::randn({1}), torch::randn({7}) * 3, torch::randn({3, 17}) * 3,
                         torch::randn({2, 300, 65}) * 4, edges}) {
    const auto x = x0.clone().requires_grad_();
    const auto dy = torch::randn(x.sizes());
    const auto y = qkv::gelu(x);
    const auto dx = torch::autograd::grad({y}, {x}, {dy})[0];
    const auto x64 = x.detach().to(torch::kFloat64).requires_grad_();
    const auto y64 = gelu_f64(x64);
    const auto dx64 = torch::autograd::grad({y64}, {x64}, {dy.to(torch::kFloat64)})[0];
    const std::string at = "numel " + std::to_string(x.numel());
    expect_elementwise_near(y, y64, "y, " + at);
    expect_elementwise_near(dx, dx64, "dx, " + at);
    // torch::gelu is an approximation too (LibTorch 2.11's misses float64 by more than this
    // bound in places): two approximations within the bound of the truth, within twice of each
    // other.
    const auto xt = x.detach().clone().requires_grad_();
    const auto yt = torch::gelu(xt);
    expect_elementwise_near(y, yt, "y against torch::gelu, " + at, 2);
    expect_elementwise_near(dx, torch::autograd::grad({yt}, {xt}, {dy})[0],
                            "dx against torch, " + at, 2);
  }
}

TEST(GeluKernel, NonContiguousInputAndRefusals) {
  torch::manual_seed(22);
  const auto x = torch::randn({9, 5}).t();  // (5, 9), transposed
  expect_elementwise_near(qkv::gelu(x), gelu_f64(x.to(torch::kFloat64)), "transposed");
  EXPECT_FALSE(qkv::gelu_supports(x.to(torch::kFloat64)));
  EXPECT_THROW(qkv::gelu(x.to(torch::kFloat64)), c10::Error);
}

// --- cross-entropy -------------------------------------------------------------------------

// The mean of log sum_j e^x[r, j] - x[r, t[r]], written out in float64.
torch::Tensor cross_entropy_f64(const torch::Tensor& x64, const torch::Tensor& t) {
  return (x64.logsumexp(1) - x64.gather(1, t.unsqueeze(1)).squeeze(1)).mean();
}

// Loss and logits' gradient against float64 autograd of the written-out formula and against
// torch::cross_entropy_loss, with an upstream gradient other than 1, at sizes that are not a
// multiple of the vector or of a thread's share: one row, one class, 65 (the characters), 1000.
TEST(CrossEntropyKernel, LossAndGradientEqualFloat64AndTorch) {
  torch::manual_seed(31);
  const std::pair<int64_t, int64_t> sizes[] = {{1, 1},    {1, 65},     {7, 17},
                                               {768, 65}, {300, 1000}, {2, 16}};
  for (const auto& [N, V] : sizes)
    for (const double spread : {1.0, 30.0}) {
      const auto x = (torch::randn({N, V}) * spread).requires_grad_();
      const auto t = torch::randint(0, V, {N}, torch::kLong);
      const auto loss = qkv::cross_entropy(x, t);
      const auto dx = torch::autograd::grad({loss * 0.25}, {x})[0];
      const auto x64 = x.detach().to(torch::kFloat64).requires_grad_();
      const auto loss64 = cross_entropy_f64(x64, t);
      const auto dx64 = torch::autograd::grad({loss64 * 0.25}, {x64})[0];
      const std::string at = "N " + std::to_string(N) + " V " + std::to_string(V) + " spread " +
                             std::to_string(spread);
      EXPECT_EQ(loss.dim(), 0) << at;
      expect_elementwise_near(loss, loss64, "loss, " + at);
      expect_elementwise_near(dx, dx64, "dx, " + at);
      const auto xt = x.detach().clone().requires_grad_();
      const auto loss_t = torch::cross_entropy_loss(xt, t);
      expect_elementwise_near(loss, loss_t, "loss against torch, " + at, 2);
      expect_elementwise_near(dx, torch::autograd::grad({loss_t * 0.25}, {xt})[0],
                              "dx against torch, " + at, 2);
    }
}

// Logits of 1e4 overflow e^x in float32 unless the row's max comes out first; a NaN logit makes
// the loss NaN, as in the reference; a target outside [0, V) is refused, named, before any read.
TEST(CrossEntropyKernel, LargeLogitsNaNAndRefusals) {
  auto x = torch::tensor({{1e4f, 1e4f - 2, -1e4f}, {0.5f, -0.5f, 0.0f}});
  const auto t = torch::tensor({1, 2}, torch::kLong);
  expect_elementwise_near(qkv::cross_entropy(x, t), cross_entropy_f64(x.to(torch::kFloat64), t),
                          "large logits");
  x[1][0] = NAN;
  EXPECT_TRUE(std::isnan(qkv::cross_entropy(x, t).item<float>()));
  try {
    qkv::cross_entropy(torch::zeros({3, 5}), torch::tensor({0, 4, 5}, torch::kLong));
    ADD_FAILURE() << "target 5 of 5 classes was taken";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 5 at row 2 is outside the vocabulary [0, 5)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(qkv::cross_entropy(torch::zeros({2, 5}), torch::tensor({-1, 0}, torch::kLong)),
               c10::Error);
  EXPECT_FALSE(qkv::cross_entropy_supports(torch::zeros({2, 5}, torch::kFloat64),
                                           torch::zeros({2}, torch::kLong)));
  EXPECT_FALSE(qkv::cross_entropy_supports(torch::zeros({2, 5}), torch::zeros({3}, torch::kLong)));
  EXPECT_FALSE(qkv::cross_entropy_supports(torch::zeros({2, 5}), torch::zeros({2}, torch::kInt)));
}

// The engine's loss takes the kernel on the fused path: same value and gradients as the
// reference's, through the model's (B, T, V) logits.
TEST(CrossEntropyKernel, TheModelsFusedLossEqualsTheReference) {
  torch::manual_seed(32);
  const auto logits = torch::randn({3, 8, 11}, torch::requires_grad());
  const auto targets = torch::randint(0, 11, {3, 8}, torch::kLong);
  const auto fused = qkv::language_model_loss(logits, targets, KernelPath::kFused);
  const auto reference = qkv::TransformerLMImpl::loss(logits, targets);
  expect_elementwise_near(fused, reference, "loss");
  expect_elementwise_near(torch::autograd::grad({fused}, {logits})[0],
                          torch::autograd::grad({reference}, {logits})[0], "gradient");
  EXPECT_NE(fused.grad_fn()->name(), reference.grad_fn()->name());  // two paths, not one
}

// --- dropout -------------------------------------------------------------------------------

// Random123's known answers for Philox4x32-10 (its kat_vectors file): zeros, all ones, and the
// digits of pi.
TEST(DropoutKernel, PhiloxMatchesRandom123sKnownAnswers) {
  using Words = std::array<uint32_t, 4>;
  EXPECT_EQ(qkv::philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (Words{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(qkv::philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                               {0xffffffff, 0xffffffff}),
            (Words{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(qkv::philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
                               {0xa4093822, 0x299f31d0}),
            (Words{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

// The correlation of a and b (0/1 flags as doubles).
double correlation(const torch::Tensor& a, const torch::Tensor& b) {
  const auto x = a.to(torch::kFloat64) - a.to(torch::kFloat64).mean();
  const auto y = b.to(torch::kFloat64) - b.to(torch::kFloat64).mean();
  return ((x * y).sum() / (x.pow(2).sum() * y.pow(2).sum()).sqrt()).item<double>();
}

// Kept elements are x / (1 - p) and the rest 0, kept at a rate within 5 standard deviations of
// 1 - p, with no correlation between neighbours (1, 16 and 64 apart: the lanes and chunks of the
// generator) beyond 5 / sqrt(n); the gradient passes through exactly the kept elements, scaled
// alike. n is not a multiple of the 64-element chunk.
TEST(DropoutKernel, KeepsAtTheRateScalesAndTheGradientTakesTheSameFlags) {
  torch::manual_seed(41);
  const int64_t n = (1 << 20) + 37;
  for (const double p : {0.1, 0.2, 0.5, 0.9}) {
    const auto x = (torch::rand({n}) + 0.5).requires_grad_();  // no zeros
    const auto y = qkv::dropout(x, p, true);
    const auto kept = y.detach() != 0;
    const double rate = kept.to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(rate, 1 - p, 5 * std::sqrt(p * (1 - p) / n)) << "p " << p;
    const auto scaled = x.detach() * static_cast<float>(1 / (1 - p));
    EXPECT_TRUE(torch::equal(y.detach(), torch::where(kept, scaled, torch::zeros_like(scaled))));
    for (const int64_t lag : {1, 16, 64})
      EXPECT_LT(std::abs(correlation(kept.slice(0, 0, n - lag), kept.slice(0, lag))),
                5 / std::sqrt(double(n)))
          << "p " << p << " lag " << lag;
    const auto dy = torch::randn({n});
    const auto dx = torch::autograd::grad({y}, {x}, {dy})[0];
    const auto want = dy * static_cast<float>(1 / (1 - p));
    EXPECT_TRUE(torch::equal(dx, torch::where(kept, want, torch::zeros_like(want))));
  }
}

// The same seed gives the same flags whatever the thread count; the next draw gives others.
TEST(DropoutKernel, RepeatsUnderASeedOnAnyThreadCountAndDrawsAfreshEachCall) {
  const auto x = torch::ones({3, 1000, 7});
  const int threads = at::get_num_threads();
  torch::manual_seed(42);
  const auto first = qkv::dropout(x, 0.3, true), second = qkv::dropout(x, 0.3, true);
  at::set_num_threads(1);
  torch::manual_seed(42);
  const auto again = qkv::dropout(x, 0.3, true);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(first, again));
  EXPECT_FALSE(torch::equal(first, second));
  torch::manual_seed(42);
  EXPECT_TRUE(torch::equal(qkv::bernoulli_mask({3, 1000, 7}, 0.7), first.ne(0).to(torch::kUInt8)))
      << "the mask and dropout read the same words under the same seed";
}

TEST(DropoutKernel, IdentityWhenOffAllZeroAtOneAndRefusals) {
  const auto x = torch::randn({5, 9});
  EXPECT_TRUE(qkv::dropout(x, 0.0, true).is_same(x));
  EXPECT_TRUE(qkv::dropout(x, 0.5, false).is_same(x));
  EXPECT_TRUE(torch::equal(qkv::dropout(x, 1.0, true), torch::zeros_like(x)));
  EXPECT_THROW(qkv::dropout(x, 1.5, true), c10::Error);
  EXPECT_THROW(qkv::dropout(x, -0.1, true), c10::Error);
  EXPECT_FALSE(qkv::dropout_supports(x.to(torch::kFloat64)));
  EXPECT_THROW(qkv::dropout(x.to(torch::kFloat64), 0.5, true), c10::Error);
  const auto mask = qkv::bernoulli_mask({2, 3, 65}, 0.25);
  EXPECT_EQ(mask.scalar_type(), torch::kUInt8);
  EXPECT_EQ(mask.sizes(), (std::vector<int64_t>{2, 3, 65}));
  EXPECT_TRUE(mask.le(1).all().item<bool>());
  EXPECT_TRUE(torch::equal(qkv::bernoulli_mask({70}, 1.0), torch::ones({70}, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(qkv::bernoulli_mask({70}, 0.0), torch::zeros({70}, torch::kUInt8)));
}

// The model with dropout on the fused path: training draws differ call to call; evaluation (no
// dropout) gives the reference's logits.
TEST(DropoutKernel, TheModelsFusedPathDropsInTrainingAndNotInEvaluation) {
  // Same seed, same weights.
  auto fused = qkv::testing::random_model(11, 8, 16, 43, 0.2);
  auto reference = qkv::testing::random_model(11, 8, 16, 43, 0.2);
  qkv::accelerate(fused, KernelPath::kFused);
  const auto idx = torch::randint(0, 11, {3, 8}, torch::kLong);
  fused->train();
  EXPECT_FALSE(torch::equal(fused(idx), fused(idx)));
  fused->eval();
  EXPECT_TRUE(torch::allclose(fused(idx), reference(idx), 1e-5, 1e-5));
}

// --- layer norm ----------------------------------------------------------------------------

torch::Tensor layer_norm_f64(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                             double eps) {
  const auto mean = x.mean(-1, /*keepdim=*/true);
  const auto var = (x - mean).pow(2).mean(-1, /*keepdim=*/true);  // biased, as layer norm's
  auto y = (x - mean) / torch::sqrt(var + eps) * w;
  return b.defined() ? y + b : y;
}

// Output and the gradients of x, weight and bias against float64 autograd of the written-out
// formula: one feature (the output is the bias), sizes not a multiple of 16, rows with a large
// mean (which a one-pass variance would cancel away), with and without bias, and backward split
// over 1 and 3 threads (each sums its own weight and bias gradients).
TEST(LayerNormKernel, ForwardAndGradientsEqualFloat64) {
  const std::vector<std::vector<int64_t>> shapes = {{1, 1},   {3, 7},      {2, 5, 33},
                                                    {4, 128}, {2, 3, 130}, {2, 64, 48}};
  const int threads = at::get_num_threads();
  for (const auto& shape : shapes)
    for (bool bias : {true, false})
      for (int n_threads : {1, 3}) {
        at::set_num_threads(n_threads);
        torch::manual_seed(shape.back() * 10 + bias);
        const int64_t C = shape.back();
        const auto x = (torch::randn(shape) * 2 + 50).requires_grad_();
        const auto w = (torch::randn({C}) + 1).requires_grad_();
        const auto b = bias ? torch::randn({C}).requires_grad_() : torch::Tensor();
        const auto dy = torch::randn(shape);
        std::vector<torch::Tensor> inputs{x, w};
        if (bias) inputs.push_back(b);
        const auto y = qkv::layer_norm(x, w, b, 1e-5);
        const auto grads = torch::autograd::grad({y}, inputs, {dy});
        std::vector<torch::Tensor> inputs64;
        for (const auto& t : inputs)
          inputs64.push_back(t.detach().to(torch::kFloat64).requires_grad_());
        const auto y64 =
            layer_norm_f64(inputs64[0], inputs64[1], bias ? inputs64[2] : torch::Tensor(), 1e-5);
        const auto grads64 = torch::autograd::grad({y64}, inputs64, {dy.to(torch::kFloat64)});
        const std::string at = "C " + std::to_string(C) + (bias ? " bias" : " no bias") +
                               ", threads " + std::to_string(n_threads);
        EXPECT_LT(max_relative_error(y, y64), 1e-5) << at;
        const char* names[] = {"dx", "dweight", "dbias"};
        for (size_t i = 1; i < grads.size(); ++i)
          EXPECT_LT(max_relative_error(grads[i], grads64[i]), 1e-5) << names[i] << ", " << at;
        // dx relative to its natural size, rstd * |dy * w|: with one feature dx is zero in exact
        // arithmetic and float rounding leaves a trace of that size.
        const auto x64 = inputs64[0];
        const auto rstd = 1 / torch::sqrt((x64 - x64.mean(-1, true)).pow(2).mean(-1) + 1e-5);
        const double dx_size =
            std::max(grads64[0].abs().max().item<double>(),
                     rstd.max().item<double>() * (dy * w.detach()).abs().max().item<double>());
        EXPECT_LT((grads[0] - grads64[0]).abs().max().item<double>() / dx_size, 1e-5)
            << "dx, " << at;
      }
  at::set_num_threads(threads);
}

TEST(LayerNormKernel, RefusesWhatItCannotTake) {
  const auto x = torch::randn({2, 8});
  EXPECT_THROW(qkv::layer_norm(x, torch::ones({7}), {}, 1e-5), c10::Error);
  EXPECT_THROW(qkv::layer_norm(x, torch::ones({8}), torch::zeros({3}), 1e-5), c10::Error);
  EXPECT_THROW(qkv::layer_norm(x.to(torch::kFloat64), torch::ones({8}), {}, 1e-5), c10::Error);
  EXPECT_THROW(qkv::layer_norm(x, torch::ones({8}), {}, 0.0), c10::Error);
}

// The modules that use these kernels, fused against the reference modules they were made from
// (sharing their parameters): same output and gradients.
TEST(LayerNormKernel, FusedModulesEqualTheReferenceModules) {
  torch::manual_seed(23);
  qkv::LayerNorm norm(24);
  qkv::FeedForward mlp(24, 72);
  qkv::FusedLayerNorm fused_norm(*norm);
  qkv::FusedFeedForward fused_mlp(*mlp);
  const auto x = torch::randn({3, 11, 24}, torch::requires_grad());
  const auto dy = torch::randn({3, 11, 24});
  auto run = [&](qkv::LayerNormImpl& n, qkv::FeedForwardImpl& m) {
    std::vector<torch::Tensor> inputs{x};
    for (auto& p : norm->parameters()) inputs.push_back(p);
    for (auto& p : mlp->parameters()) inputs.push_back(p);
    const auto y = m.forward(n.forward(x));
    auto out = torch::autograd::grad({y}, inputs, {dy});
    out.push_back(y.detach());
    return out;
  };
  const auto fused = run(*fused_norm, *fused_mlp), reference = run(*norm, *mlp);
  ASSERT_EQ(fused.size(), reference.size());
  for (size_t i = 0; i < fused.size(); ++i)
    EXPECT_LT(max_relative_error(fused[i], reference[i]), 1e-5) << "tensor " << i;
}

}  // namespace
