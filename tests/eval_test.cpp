// Perplexity: a uniform model, hand-computed bits per byte, agreement with the training loss,
// sliding windows that score each token once and never lose by having more context.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "qkv/data/data_preparer.h"
#include "qkv/eval/perplexity_evaluator.h"
#include "qkv/train/checkpoint.h"
#include "qkv/train/trainer.h"
#include "test_support.h"

namespace {

qkv::TransformerLM model_with(int64_t vocab, int64_t block) {
  return qkv::testing::random_model(vocab, block, 16, 3);
}

std::vector<qkv::TokenId> random_tokens(int64_t n, int64_t vocab) {
  auto t = torch::randint(0, vocab, {n}, torch::kInt);
  return std::vector<qkv::TokenId>(t.data_ptr<qkv::TokenId>(), t.data_ptr<qkv::TokenId>() + n);
}

TEST(Perplexity, UniformModelScoresItsVocabularySize) {
  const int64_t V = 65;
  auto model = model_with(V, 16);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.zero_();  // every logit 0: a uniform distribution
  }
  auto tokens = random_tokens(100, V);
  // Char tokens of ASCII text: one byte each; the first is context only, so 99 bytes scored.
  auto r = qkv::evaluate_perplexity(model, tokens, 99, {});
  EXPECT_EQ(r.tokens_scored, 99);
  EXPECT_NEAR(r.perplexity, 65.0, 1e-4);
  EXPECT_NEAR(r.mean_nll, std::log(65.0), 1e-6);
  EXPECT_NEAR(r.bits_per_byte, std::log2(65.0), 1e-6);  // 6.0224 bits per character
  // The same tokens standing for 2 bytes each (say): half the bits per byte.
  EXPECT_NEAR(qkv::evaluate_perplexity(model, tokens, 198, {}).bits_per_byte, std::log2(65.0) / 2,
              1e-6);
}

TEST(Perplexity, DisjointWindowsMatchTheTrainingLossOfTheSameWindows) {
  const int64_t V = 30, L = 16;
  auto model = model_with(V, L);
  auto tokens = random_tokens(5 * L + 1, V);
  auto r = qkv::evaluate_perplexity(model, tokens, 0, {L, 3});
  ASSERT_EQ(r.tokens_scored, 5 * L);
  torch::NoGradGuard no_grad;
  auto all = torch::tensor(tokens).to(torch::kLong);
  std::vector<torch::Tensor> xs, ys;
  for (int64_t w = 0; w < 5; ++w) {
    xs.push_back(all.narrow(0, w * L, L));
    ys.push_back(all.narrow(0, w * L + 1, L));
  }
  auto loss = qkv::TransformerLMImpl::loss(model(torch::stack(xs)), torch::stack(ys));
  EXPECT_NEAR(r.mean_nll, loss.item<double>(), 1e-5);
}

TEST(Perplexity, EveryTokenIsScoredOnceWhateverTheStride) {
  auto model = model_with(30, 16);
  auto tokens = random_tokens(123, 30);
  for (int64_t stride : {1, 3, 8, 15, 16})
    EXPECT_EQ(qkv::evaluate_perplexity(model, tokens, 0, {stride, 4}).tokens_scored, 122) << stride;
  EXPECT_THROW(qkv::evaluate_perplexity(model, {5}, 0, {}), std::invalid_argument);
  EXPECT_THROW(qkv::evaluate_perplexity(model, tokens, 0, {17, 4}), std::invalid_argument);
}

TEST(Perplexity, SmallerStridesBeatDisjointWindowsOnATrainedModel) {
  qkv::testing::TempDir dir("eval_stride");
  const std::string corpus = qkv::testing::sample_corpus(1000);
  qkv::testing::write_file(dir / "corpus.txt", corpus);
  auto config = qkv::testing::tiny_config(
      dir, {"train.max_steps=600", "train.batch_size=16", "model.d_model=64", "model.dropout=0",
            "optim.lr=3e-3", "optim.min_lr=3e-4", "eval.every=200", "runtime.threads=2"});
  qkv::prepare_data(config);
  qkv::Trainer(config).run();
  auto ckpt = qkv::Checkpoint::load(dir / "run/best.pt");
  auto meta = qkv::DatasetMeta::load(config.data.dir);
  qkv::TokenFile val(meta.val_path(), meta.dtype);
  std::vector<qkv::TokenId> tokens(val.size());
  val.read(0, val.size(), tokens.data());
  const int64_t L = ckpt.config.model.block_size;
  // Disjoint windows give the first tokens of each window almost no context; any smaller stride
  // gives every token at least L - stride. So every smaller stride must score better than L, and
  // halving the stride clearly so. (Between small strides the order is not guaranteed: the
  // model's last positions need not be its best. On Shakespeare, model of 2000 steps, strides
  // 64/32/16/8 gave perplexity 6.51/6.33/6.34/6.35.)
  const double disjoint = qkv::evaluate_perplexity(ckpt.model, tokens, 0, {L, 16}).perplexity;
  const double half = qkv::evaluate_perplexity(ckpt.model, tokens, 0, {L / 2, 16}).perplexity;
  EXPECT_LT(half, disjoint * 0.95);
  for (int64_t stride : {L - 1, L / 4, int64_t{1}})
    EXPECT_LT(qkv::evaluate_perplexity(ckpt.model, tokens, 0, {stride, 16}).perplexity, disjoint)
        << "stride " << stride;
}

}  // namespace

namespace {

// PyTorch (Debian's python3-torch) runs bench/reference.py, an independent implementation of the
// same architecture, on a qkv checkpoint: its logits must match qkv's.
class ReferenceCheck : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(ReferenceCheck, LogitsMatchPyTorchEager) {
  const char* env = std::getenv("QKV_PYTHON");
  const std::string python = env ? env : "/usr/bin/python3";
  if (std::system((python + " -c 'import torch' > /dev/null 2>&1").c_str()) != 0)
    GTEST_SKIP() << python << " has no torch (install python3-torch): reference check skipped";
  qkv::testing::TempDir dir("reference");
  qkv::testing::write_file(dir / "corpus.txt", qkv::testing::sample_corpus(200));
  auto overrides = GetParam();
  overrides.push_back("train.max_steps=5");
  auto config = qkv::testing::tiny_config(dir, overrides);
  qkv::prepare_data(config);
  qkv::Trainer(config).run();  // trained a little, so no weight is still at its initial value
  auto ckpt = qkv::Checkpoint::load(dir / "run/last.pt");
  const int64_t V = ckpt.config.model.vocab_size, T = ckpt.config.model.block_size;
  auto idx = torch::empty({2, T}, torch::kLong);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < T; ++t) idx[b][t] = (7 * b + 3 * t + 1) % V;
  torch::NoGradGuard no_grad;
  ckpt.model->eval();
  auto ours = ckpt.model(idx);

  const std::string out = dir / "reference.json";
  const std::string cmd = python + " " + QKV_SOURCE_DIR + "/bench/reference.py logits " +
                          (dir / "run/last.pt") + " > " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(out);
  auto j = nlohmann::json::parse(in);
  auto values = j["logits"].get<std::vector<float>>();
  auto theirs = torch::tensor(values).reshape(ours.sizes());
  const double rel = ((ours - theirs).abs().max() / theirs.abs().max()).item<double>();
  EXPECT_LT(rel, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Variants, ReferenceCheck,
                         ::testing::Values(std::vector<std::string>{},
                                           std::vector<std::string>{
                                               "model.bias=false", "model.tie_weights=true",
                                               "model.positional_encoding=learned"}));

}  // namespace
