// Packed inference weights: int8 and bfloat16 copies of a linear layer's weight, the kernels that
// read them (checked against float64 products of the widened weight), and the model decoding
// with them.
#include <gtest/gtest.h>

#include <algorithm>

#include "qkv/generate/incremental_decoder.h"
#include "qkv/kernels/packed_linear.h"
#include "qkv/kernels/packed_weight.h"
#include "qkv/model/linear.h"
#include "test_support.h"

namespace {

using qkv::PackedWeight;
using qkv::WeightFormat;

// x W^T + b in float64 from the weight the packed products use.
torch::Tensor reference_linear(const torch::Tensor& x, const PackedWeight& w,
                               const torch::Tensor& bias) {
  auto y = torch::matmul(x.to(torch::kFloat64), w.widened().to(torch::kFloat64).t());
  return bias.defined() ? y + bias.to(torch::kFloat64) : y;
}

double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max() /
          b.to(torch::kFloat64).abs().max())
      .item<double>();
}

// Odd sizes reach the kernels' 16-lane tails and a one-column weight; 1 and 3 rows of x use the
// kernel, 7 rows the widened BLAS product.
const std::vector<std::pair<int64_t, int64_t>> kShapes = {{5, 37}, {33, 130}, {64, 384}, {3, 1}};

TEST(PackedWeight, Int8KeepsEachWeightWithinHalfItsRowScale) {
  torch::manual_seed(3);
  for (auto [out, in] : kShapes) {
    auto w = torch::randn({out, in}) * torch::rand({out, 1}) * 4;  // rows of different ranges
    PackedWeight packed(w, WeightFormat::kInt8);
    const auto scale = w.abs().amax(1, true) / 127;  // by hand: the largest |w| maps to 127
    const auto err = (packed.widened() - w).abs();
    EXPECT_TRUE((err <= scale * 0.5 + 1e-7).all().item<bool>()) << out << "x" << in;
    EXPECT_EQ(packed.bytes(), out * in + out * 4);
  }
}

TEST(PackedWeight, Bf16IsTheWeightRoundedToNearestBfloat16) {
  torch::manual_seed(4);
  auto w = torch::randn({9, 70});
  PackedWeight packed(w, WeightFormat::kBFloat16);
  // bfloat16 keeps 8 significant bits: round-to-nearest is within 2^-8 relative.
  EXPECT_TRUE(((packed.widened() - w).abs() <= w.abs() * std::ldexp(1.0, -8)).all().item<bool>());
  EXPECT_TRUE(torch::equal(packed.widened(), w.to(torch::kBFloat16).to(torch::kFloat32)));
  EXPECT_EQ(packed.bytes(), 9 * 70 * 2);
}

TEST(PackedWeight, ProductsMatchFloat64OfTheWidenedWeightForEveryShapeAndRowCount) {
  torch::manual_seed(5);
  for (auto format : {WeightFormat::kInt8, WeightFormat::kBFloat16})
    for (auto [out, in] : kShapes)
      for (int64_t rows : {1, 3, 7}) {
        auto w = torch::randn({out, in});
        auto bias = torch::randn({out});
        PackedWeight packed(w, format);
        auto x = torch::randn({rows, in});
        const auto expected = reference_linear(x, packed, bias);
        const std::string what = qkv::weight_format_name(format) + " " + std::to_string(out) + "x" +
                                 std::to_string(in) + ", " + std::to_string(rows) + " rows";
        EXPECT_LT(max_rel_diff(packed.linear(x, bias), expected), 1e-5) << what;
        EXPECT_LT(max_rel_diff(packed.linear(x, torch::Tensor()),
                               reference_linear(x, packed, torch::Tensor())),
                  1e-5)
            << what << ", no bias";
        // Leading dimensions are kept: (1, rows, in) -> (1, rows, out).
        EXPECT_EQ(packed.linear(x.unsqueeze(0), bias).sizes(), torch::IntArrayRef({1, rows, out}));
      }
}

TEST(PackedWeight, AZeroRowGivesTheBiasAndBadInputIsRefused) {
  auto w = torch::randn({4, 20});
  w[2].zero_();
  auto bias = torch::arange(4, torch::kFloat32);
  PackedWeight packed(w, WeightFormat::kInt8);
  EXPECT_EQ(packed.linear(torch::randn({1, 20}), bias)[0][2].item<float>(), 2.0f);
  EXPECT_THROW(packed.linear(torch::randn({1, 21}), bias), std::invalid_argument);
  EXPECT_THROW(PackedWeight(w, WeightFormat::kFloat32), std::invalid_argument);
  EXPECT_THROW(PackedWeight(w.to(torch::kFloat64), WeightFormat::kInt8), std::invalid_argument);
  EXPECT_EQ(qkv::parse_weight_format("int8"), WeightFormat::kInt8);
  EXPECT_EQ(qkv::parse_weight_format("bf16"), WeightFormat::kBFloat16);
  try {
    qkv::parse_weight_format("fp16");
    FAIL() << "fp16 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'fp16'"), std::string::npos) << e.what();
  }
}

TEST(Linear, HasTorchLinearsNamesAndThePackedLayerServesOnlyInference) {
  torch::manual_seed(6);
  qkv::Linear linear(24, 10);
  auto params = linear->named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_TRUE(params.contains("weight") && params.contains("bias"));
  EXPECT_FALSE(qkv::Linear(24, 10, false)->named_parameters().contains("bias"));
  auto x = torch::randn({2, 24});
  const auto exact = torch::linear(x, linear->weight, linear->bias);
  qkv::PackedLinear packed(*linear, WeightFormat::kInt8);
  EXPECT_EQ(packed->named_parameters().keys(), params.keys());
  PackedWeight same(linear->weight, WeightFormat::kInt8);
  {
    torch::NoGradGuard no_grad;
    EXPECT_LT(max_rel_diff(packed(x), reference_linear(x, same, linear->bias)), 1e-5);
    EXPECT_FALSE(torch::equal(packed(x), exact));  // the int8 copy was used
    EXPECT_TRUE(torch::equal(linear(x), exact));   // the reference layer is as it was
  }
  // With gradients on (training), the float32 weight, shared with the reference layer.
  auto y = packed(x);
  EXPECT_TRUE(torch::equal(y, exact));
  y.sum().backward();
  EXPECT_TRUE(linear->weight.grad().defined());
}

TEST(PackedWeight, ModelDecodesWithTheCacheAsItRecomputesAndLeavesItsWeightsAlone) {
  auto model = qkv::testing::random_model(20, 16, 64, 7);
  std::vector<torch::Tensor> before;
  for (auto& p : model->parameters()) before.push_back(p.clone());
  torch::NoGradGuard no_grad;
  std::vector<qkv::TokenId> prompt = {3, 1, 4, 1, 5, 9, 2, 6};
  auto ids = torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.end())).unsqueeze(0);
  const auto fp32 = model(ids)[0][-1];
  // 2 blocks of W^Q, W^K, W^V, W^O (64 x 64) and the feed-forward (64 x 256 twice) in int8, and
  // a float32 scale per output row.
  const int64_t bytes = qkv::pack_for_inference(model, WeightFormat::kInt8);
  EXPECT_EQ(bytes, 2 * (4 * 64 * 64 + 2 * 64 * 256 + (4 * 64 + 256 + 64) * 4));
  // The cached decoder runs the kernel (one row); recomputation the widened BLAS product.
  qkv::IncrementalDecoder cached(model, true, 0.5), recomputed(model, false, 0.5);
  auto a = cached.feed(prompt), b = recomputed.feed(prompt);
  for (qkv::TokenId next : {7, 0, 19, 3, 3, 8, 11, 2, 5, 5, 1, 4}) {  // past the 16 context
    ASSERT_LT(max_rel_diff(a, b), 1e-5);
    a = cached.feed({next});
    b = recomputed.feed({next});
  }
  const auto int8 = model(ids)[0][-1];
  EXPECT_FALSE(torch::equal(int8, fp32));
  EXPECT_LT(max_rel_diff(int8, fp32), 0.05);  // close, not equal: int8 rounding
  auto after = model->parameters();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i]));
  qkv::pack_for_inference(model, WeightFormat::kFloat32);
  EXPECT_TRUE(torch::equal(model(ids)[0][-1], fp32));
}

}  // namespace

namespace {

double json_number(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\":");
  return at == std::string::npos ? -1 : std::stod(json.substr(at + key.size() + 3));
}

// Through the command line: eval measures what int8 costs, generate decodes with it, and a
// format that does not exist is one line naming the flag.
TEST(WeightsFlag, EvalAndGenerateUseThePackedWeights) {
  qkv::testing::TempDir dir("qkv_test_weights_flag");
  qkv::testing::write_file(dir / "corpus.txt", qkv::testing::sample_corpus(400));
  const std::string qkv = QKV_BINARY;
  const std::string run = dir / "run";
  auto trained =
      qkv::testing::run_command(qkv + " train " + QKV_SOURCE_DIR +
                                "/configs/tiny.yaml --set data.files=" + (dir / "corpus.txt") +
                                " --set data.dir=" + (dir / "data") +
                                " --set train.out_dir=" + run + " --set train.max_steps=30 2>&1");
  ASSERT_EQ(trained.exit_code, 0) << trained.out;
  auto eval = [&](const std::string& weights) {
    auto r = qkv::testing::run_command(qkv + " eval " + run + " --data " + (dir / "corpus.txt") +
                                       " --json --weights " + weights + " 2> /dev/null");
    EXPECT_EQ(r.exit_code, 0) << weights;
    return json_number(r.out, "perplexity");
  };
  const double fp32 = eval("fp32"), int8 = eval("int8"), bf16 = eval("bf16");
  ASSERT_GT(fp32, 1.0);
  EXPECT_NE(int8, fp32);                  // the packed weights were used ...
  EXPECT_NEAR(int8, fp32, 0.005 * fp32);  // ... and cost less than 0.5% of perplexity
  EXPECT_NEAR(bf16, fp32, 0.005 * fp32);
  auto text = qkv::testing::run_command(qkv + " generate " + run +
                                        " --weights int8 --max-new-tokens 40 --prompt ab");
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_EQ(text.out.size(), 2u + 40u + 1u) << text.out;  // prompt, 40 chars, newline
  auto bad = qkv::testing::run_command(qkv + " generate " + run + " --weights fp16 2>&1");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("--weights"), std::string::npos) << bad.out;
  EXPECT_EQ(std::count(bad.out.begin(), bad.out.end(), '\n'), 1) << bad.out;
}

}  // namespace
