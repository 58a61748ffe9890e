// Self-attention checked against the lecture's hand-computed example and a float64 reference.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "qkv/model/multi_head_self_attention.h"

namespace {

using qkv::MultiHeadSelfAttention;
using qkv::MultiHeadSelfAttentionOptions;

// The lecture's 3-feature embeddings (tech, fruitness, other), normalised to unit length.
torch::Tensor lecture_embeddings(const std::vector<std::string>& words) {
  static const std::map<std::string, std::vector<float>> table = {{"orange", {0, 3, 0}},
                                                                  {"apple", {2, 2, 0}},
                                                                  {"and", {0, 0, 2}},
                                                                  {"an", {0, 0, 3}},
                                                                  {"phone", {4, 0, 0}}};
  std::vector<torch::Tensor> rows;
  for (const auto& w : words) {
    auto v = torch::tensor(table.at(w));
    rows.push_back(v / v.norm());
  }
  return torch::stack(rows).unsqueeze(0);  // (1, T, 3)
}

// Identity W^Q, W^K, W^V, W^O and no 1/sqrt(d_k): the scores are plain dot products of the
// embeddings, as the lecture computes them by hand.
MultiHeadSelfAttention lecture_attention(bool causal) {
  MultiHeadSelfAttention attn(
      MultiHeadSelfAttentionOptions(3, 1).bias(false).causal(causal).scale_scores(false));
  torch::NoGradGuard no_grad;
  for (auto* w : {&attn->w_q, &attn->w_k, &attn->w_v, &attn->w_o})
    (*w)->weight.copy_(torch::eye(3));
  return attn;
}

torch::Tensor attention_row(bool causal, const std::vector<std::string>& words, int64_t query) {
  auto attn = lecture_attention(causal);
  const auto weights = std::get<1>(attn->forward_with_weights(lecture_embeddings(words)));
  return weights[0][0][query];  // (T)
}

double round2(const torch::Tensor& t) {
  return std::round(t.item<double>() * 100) / 100;
}

TEST(LectureExample, OrangeInAnAppleAndOrange) {
  auto row = attention_row(true, {"an", "apple", "and", "orange"}, 3);
  EXPECT_DOUBLE_EQ(round2(row[3]), 0.40);  // orange
  EXPECT_DOUBLE_EQ(round2(row[1]), 0.30);  // apple
  EXPECT_DOUBLE_EQ(round2(row[2]), 0.15);  // and
  EXPECT_DOUBLE_EQ(round2(row[0]), 0.15);  // an
}

TEST(LectureExample, AppleInPhoneApple) {
  auto row = attention_row(true, {"phone", "apple"}, 1);
  EXPECT_DOUBLE_EQ(round2(row[1]), 0.57);
  EXPECT_DOUBLE_EQ(round2(row[0]), 0.43);
}

TEST(LectureExample, AppleInAnApplePhoneWithoutMask) {
  auto row = attention_row(false, {"an", "apple", "phone"}, 1);
  EXPECT_DOUBLE_EQ(round2(row[1]), 0.47);
  EXPECT_DOUBLE_EQ(round2(row[2]), 0.35);
  EXPECT_DOUBLE_EQ(round2(row[0]), 0.17);
}

TEST(LectureExample, CausalMaskHidesFutureButNotThePastOfTheLastToken) {
  std::vector<std::string> words = {"an", "apple", "phone"};
  auto masked = attention_row(true, words, 2);
  auto open = attention_row(false, words, 2);
  EXPECT_TRUE(torch::allclose(masked, open, 0, 1e-7));
  auto apple_masked = attention_row(true, words, 1);
  EXPECT_EQ(apple_masked[2].item<float>(), 0.0f);  // apple may not see phone, which follows it
  EXPECT_NEAR(apple_masked.sum().item<float>(), 1.0f, 1e-6);
}

// softmax(QK^T/sqrt(d))V written with scalar loops in double: a different path from the module.
struct Reference {
  std::vector<double> out;      // B*T*C
  std::vector<double> weights;  // B*H*T*T
};

Reference reference_attention(const torch::Tensor& x32, MultiHeadSelfAttention& m, bool causal) {
  auto x = x32.to(torch::kFloat64).contiguous();
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), H = m->options.n_head(), D = C / H;
  auto to_vec = [](const torch::Tensor& t) {
    auto c = t.detach().to(torch::kFloat64).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  auto xs = to_vec(x);
  auto wq = to_vec(m->w_q->weight), wk = to_vec(m->w_k->weight), wv = to_vec(m->w_v->weight),
       wo = to_vec(m->w_o->weight);
  auto bq = to_vec(m->w_q->bias), bk = to_vec(m->w_k->bias), bv = to_vec(m->w_v->bias),
       bo = to_vec(m->w_o->bias);
  auto project = [&](const std::vector<double>& in, const std::vector<double>& w,
                     const std::vector<double>& b) {
    std::vector<double> out(B * T * C);
    for (int64_t n = 0; n < B * T; ++n)
      for (int64_t o = 0; o < C; ++o) {
        double s = b[o];
        for (int64_t i = 0; i < C; ++i) s += in[n * C + i] * w[o * C + i];
        out[n * C + o] = s;
      }
    return out;
  };
  auto q = project(xs, wq, bq), k = project(xs, wk, bk), v = project(xs, wv, bv);
  Reference r;
  r.weights.assign(B * H * T * T, 0.0);
  std::vector<double> concat(B * T * C, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(T, -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < T; ++j) {
          if (causal && j > i) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += q[(b * T + i) * C + h * D + d] * k[(b * T + j) * C + h * D + d];
          s[j] = dot / std::sqrt(double(D));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (int64_t j = 0; j < T; ++j) z += std::exp(s[j] - mx);
        for (int64_t j = 0; j < T; ++j) {
          double p = std::exp(s[j] - mx) / z;
          r.weights[((b * H + h) * T + i) * T + j] = p;
          for (int64_t d = 0; d < D; ++d)
            concat[(b * T + i) * C + h * D + d] += p * v[(b * T + j) * C + h * D + d];
        }
      }
  r.out = project(concat, wo, bo);
  return r;
}

double max_relative_error(const torch::Tensor& got, const std::vector<double>& want) {
  auto g = got.detach().to(torch::kFloat64).contiguous();
  double max_err = 0, max_ref = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    max_err = std::max(max_err, std::abs(g.data_ptr<double>()[i] - want[i]));
    max_ref = std::max(max_ref, std::abs(want[i]));
  }
  return max_err / max_ref;
}

class AttentionReference : public ::testing::TestWithParam<bool> {};

TEST_P(AttentionReference, OutputAndWeightsMatchFloat64Loops) {
  const bool causal = GetParam();
  torch::manual_seed(7);
  MultiHeadSelfAttention attn(MultiHeadSelfAttentionOptions(24, 4).causal(causal));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : attn->parameters()) p.normal_(0, 0.3);  // biases too, so they are checked
  }
  auto x = torch::randn({3, 7, 24});
  auto [out, weights] = attn->forward_with_weights(x);
  auto ref = reference_attention(x, attn, causal);
  EXPECT_LT(max_relative_error(out, ref.out), 1e-5);
  EXPECT_LT(max_relative_error(weights, ref.weights), 1e-5);

  // The same module in float64 agrees far more tightly: the float32 gap above is rounding only.
  attn->to(torch::kFloat64);
  auto [out64, weights64] = attn->forward_with_weights(x.to(torch::kFloat64));
  EXPECT_LT(max_relative_error(out64, ref.out), 1e-12);
  EXPECT_LT(max_relative_error(weights64, ref.weights), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(CausalAndOpen, AttentionReference, ::testing::Values(true, false));

TEST(MultiHeadSelfAttention, ParametersAreFindableByLectureNames) {
  MultiHeadSelfAttention attn(MultiHeadSelfAttentionOptions(16, 2));
  auto params = attn->named_parameters();
  for (const char* name : {"w_q.weight", "w_k.weight", "w_v.weight", "w_o.weight"}) {
    ASSERT_TRUE(params.contains(name)) << name;
    EXPECT_EQ(params[name].sizes(), torch::IntArrayRef({16, 16}));
  }
}

}  // namespace
