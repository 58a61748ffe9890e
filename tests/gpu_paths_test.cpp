// The paths written for the GPU, against the code they stand in for: DecodeStep against
// TransformerLM::forward with a KVCache, LossEstimator against the eager loop over the same
// batches and CheckpointWriter against write_checkpoint. On a CPU each runs eagerly (the
// same code a CUDA graph records); the GPU tests compare the replays with eager runs, and skip
// without a GPU.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <torch/cuda.h>

#include "qkv/data/batch_sampler.h"
#include "qkv/data/token_file.h"
#include "qkv/generate/decode_step.h"
#include "qkv/generate/incremental_decoder.h"
#include "qkv/io/file_bytes.h"
#include "qkv/runtime/captured_graph.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "qkv/train/checkpoint_writer.h"
#include "qkv/train/loss_estimator.h"
#include "qkv/train/optimizer_setup.h"
#include "test_support.h"

namespace {

using qkv::testing::TempDir;

double max_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kCPU, torch::kFloat64) - b.to(torch::kCPU, torch::kFloat64))
      .abs()
      .max()
      .item<double>();
}

// Greedy decoding of B sequences from a prompt of `prompt` tokens to the full context, once by
// the model's forward with a KVCache and once by DecodeStep; the logits of every step must agree.
void expect_decode_step_matches_forward(qkv::TransformerLM model, int64_t B, int64_t prompt,
                                        double tolerance) {
  torch::NoGradGuard no_grad;
  const auto device = model->lm_head_weight().device();
  const int64_t L = model->config().block_size, V = model->config().vocab_size;
  torch::manual_seed(5);
  const auto start = torch::randint(0, V, {B, prompt}, torch::kLong).to(device);
  std::vector<qkv::KVCache> reference_caches, step_caches;
  auto reference = model->forward(start, &reference_caches).select(1, -1);
  model->forward(start, &step_caches);
  qkv::DecodeStep step(model, step_caches);
  auto next = reference.argmax(-1, true);  // (B, 1)
  for (int64_t pos = prompt; pos < L; ++pos) {
    reference = model->forward(next, &reference_caches).select(1, -1);  // (B, V)
    const auto stepped = step.run(next);
    ASSERT_LT(max_difference(stepped, reference), tolerance) << "position " << pos;
    EXPECT_EQ(step_caches[0].length(), pos + 1);
    next = reference.argmax(-1, true);
  }
  EXPECT_THROW(step.run(next), std::length_error);  // the cache is full
}

TEST(DecodeStep, LogitsMatchTheForwardWithAKVCacheAtEveryPosition) {
  for (const char* positions : {"sinusoidal", "learned"}) {
    auto model = qkv::testing::random_model(37, 24, 32, 3);
    if (std::string(positions) == "learned") {
      qkv::ModelConfig c = model->config();
      c.positional_encoding = qkv::PositionalEncodingKind::kLearned;
      torch::manual_seed(4);
      model = qkv::TransformerLM(c);
      model->eval();
    }
    SCOPED_TRACE(positions);
    expect_decode_step_matches_forward(model, 3, 5, 1e-5);
  }
}

TEST(DecodeStep, ReadsEveryPositionOfAReusedCacheButAttendsToTheWrittenOnes) {
  // A cache reset after a longer use holds an earlier window's keys beyond the new position:
  // they must be masked out, so the logits equal those of a fresh cache.
  torch::NoGradGuard no_grad;
  auto model = qkv::testing::random_model(20, 16, 32, 8);
  std::vector<qkv::KVCache> reused, fresh;
  auto long_prompt = torch::randint(0, 20, {1, 15}, torch::kLong);
  model->forward(long_prompt, &reused);
  for (auto& cache : reused) cache.reset();
  const auto prompt = torch::randint(0, 20, {1, 3}, torch::kLong);
  model->forward(prompt, &reused);
  model->forward(prompt, &fresh);
  qkv::DecodeStep on_reused(model, reused), on_fresh(model, fresh);
  const auto token = torch::full({1, 1}, 7, torch::kLong);
  EXPECT_LT(max_difference(on_reused.run(token), on_fresh.run(token)), 1e-6);
}

TEST(DecodeStep, RefusesCachesThatHoldNoPrompt) {
  auto model = qkv::testing::random_model(20, 16, 32, 8);
  std::vector<qkv::KVCache> none;
  EXPECT_THROW(qkv::DecodeStep(model, none), std::invalid_argument);
}

TEST(KVCache, SetLengthStaysWithinTheCapacity) {
  qkv::KVCache cache(4);
  cache.set_length(4);
  EXPECT_EQ(cache.length(), 4);
  EXPECT_THROW(cache.set_length(5), std::length_error);
  EXPECT_THROW(cache.set_length(-1), std::length_error);
  cache.reset();
  EXPECT_EQ(cache.length(), 0);
}

TEST(CapturedGraph, RunsItsBodyEveryTimeWithoutCuda) {
  int runs = 0;
  qkv::CapturedGraph graph([&] { ++runs; }, /*enabled=*/false);
  for (int i = 0; i < 3; ++i) graph.run();
  EXPECT_EQ(runs, 3);
  EXPECT_FALSE(graph.replaying());
}

// The trainer's evaluation loop as it was before LossEstimator: a fresh sampler, each batch moved
// to the model's device, the mean of the batches' losses.
double eager_loss(qkv::TransformerLM model, std::shared_ptr<const qkv::TokenFile> tokens,
                  const qkv::LossEstimatorOptions& o) {
  torch::NoGradGuard no_grad;
  model->eval();
  qkv::BatchSampler sampler(tokens, o.batch_size, o.block_size, o.seed);
  const auto device = model->lm_head_weight().device();
  double total = 0;
  for (int64_t i = 0; i < o.batches; ++i) {
    auto batch = sampler.next();
    total +=
        qkv::TransformerLMImpl::loss(model(batch.x.to(device)), batch.y.to(device)).item<double>();
  }
  model->train();
  return total / double(o.batches);
}

std::shared_ptr<const qkv::TokenFile> sample_tokens(const TempDir& dir) {
  std::vector<qkv::TokenId> ids;
  for (int i = 0; i < 5000; ++i) ids.push_back(static_cast<qkv::TokenId>((i * 7 + i / 13) % 37));
  qkv::TokenFileWriter writer(dir / "tokens.bin", qkv::TokenDtype::kUInt16);
  writer.append(ids);
  writer.finish();
  return std::make_shared<const qkv::TokenFile>(dir / "tokens.bin", qkv::TokenDtype::kUInt16);
}

qkv::LossEstimatorOptions estimator_options() {
  qkv::LossEstimatorOptions o;
  o.batches = 6;
  o.batch_size = 4;
  o.block_size = 24;
  o.seed = 99;
  return o;
}

TEST(LossEstimator, GivesTheEagerLoopsFigureOnTheSameBatchesEveryTime) {
  TempDir dir("loss_estimator");
  auto tokens = sample_tokens(dir);
  auto model = qkv::testing::random_model(37, 24, 32, 3, /*dropout=*/0.3);
  model->train();
  const auto o = estimator_options();
  const double expected = eager_loss(model, tokens, o);
  qkv::LossEstimator estimator(model, tokens, o);
  for (int run = 0; run < 3; ++run) {
    const double mean = estimator.loss_sum().item<double>() / double(o.batches);
    EXPECT_NEAR(mean, expected, 1e-6 * expected) << "run " << run;  // dropout is off in eval
  }
  EXPECT_TRUE(model->is_training());  // handed back in training mode
}

// Serialises a model and optimizer after a few AdamW steps.
struct TrainedPair {
  qkv::TransformerLM model;
  std::unique_ptr<torch::optim::AdamW> optimizer;
};

TrainedPair trained_pair(const torch::Device& device) {
  auto model = qkv::testing::random_model(37, 24, 32, 3);
  model->to(device);
  model->train();
  qkv::OptimConfig optim;
  auto optimizer = qkv::make_adamw(model, optim);
  torch::manual_seed(1);
  for (int i = 0; i < 3; ++i) {
    const auto x = torch::randint(0, 37, {2, 24}, torch::kLong).to(device);
    qkv::TransformerLMImpl::loss(model(x), x).backward();
    optimizer->step();
    optimizer->zero_grad();
  }
  return {model, std::move(optimizer)};
}

void expect_writer_matches_write_checkpoint(const torch::Device& device) {
  TempDir dir("checkpoint_writer");
  auto trained = trained_pair(device);
  qkv::CharTokenizer tokenizer("abcdefghij klmnopqrstuvwxyz.\n");
  qkv::Config config;
  config.model = trained.model->config();
  qkv::TrainingState state;
  state.step = 3;
  state.sampler_state = "sampler";
  qkv::write_checkpoint(dir / "direct.pt", trained.model, trained.optimizer.get(), config,
                        tokenizer, state);
  torch::manual_seed(77);
  const auto expected_draw = torch::rand({4});
  torch::manual_seed(77);
  qkv::CheckpointWriter writer(trained.model, trained.optimizer.get());
  writer.save({dir / "a.pt", dir / "b.pt"}, config, tokenizer, state);
  // Making the host copy draws nothing from the generator training uses.
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected_draw));
  // The snapshot is taken at save(): a later change to the weights does not reach the file.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : trained.model->parameters()) p.add_(1.0);
  }
  writer.wait();
  const auto bytes = qkv::read_file_bytes(dir / "a.pt");
  EXPECT_EQ(qkv::read_file_bytes(dir / "b.pt"), bytes);
  // Two files, not two names of one: damage to one leaves the other whole.
  std::fstream(dir / "a.pt", std::ios::in | std::ios::out | std::ios::binary).put('!');
  EXPECT_EQ(qkv::read_file_bytes(dir / "b.pt"), bytes);
  qkv::write_file_atomically(dir / "a.pt", bytes);
  // The optimizer's archive names parameters by address, so the files differ in those bytes
  // alone: what they load back must be equal, bit for bit.
  auto direct = qkv::Checkpoint::load(dir / "direct.pt");
  auto written = qkv::Checkpoint::load(dir / "a.pt");
  EXPECT_EQ(written.state.step, 3);
  EXPECT_EQ(written.state.sampler_state, "sampler");
  EXPECT_EQ(qkv::testing::max_param_difference(written.model, direct.model), 0.0);
  auto direct_optimizer = qkv::make_adamw(direct.model, qkv::OptimConfig{});
  auto written_optimizer = qkv::make_adamw(written.model, qkv::OptimConfig{});
  direct.load_optimizer(*direct_optimizer);
  written.load_optimizer(*written_optimizer);
  // One fingerprint per parameter's state (its moments' sums and step count), in sorted order.
  auto moments = [](torch::optim::AdamW& optimizer) {
    std::vector<torch::Tensor> all;
    for (auto& entry : optimizer.state()) {
      auto& st = static_cast<torch::optim::AdamWParamState&>(*entry.second);
      all.push_back(st.exp_avg().sum().to(torch::kFloat64) +
                    st.exp_avg_sq().sum().to(torch::kFloat64) + double(st.step()));
    }
    return std::get<0>(torch::stack(all).sort(0));
  };
  const auto expected = moments(*direct_optimizer);
  EXPECT_EQ(expected.size(0), static_cast<int64_t>(direct.model->parameters().size()));
  EXPECT_TRUE(torch::equal(moments(*written_optimizer), expected));
}

TEST(CheckpointWriter, WritesWhatWriteCheckpointWritesFromASnapshotTakenAtSave) {
  expect_writer_matches_write_checkpoint(torch::kCPU);
}

TEST(CheckpointWriter, AFailedWriteIsRethrownNamingTheFile) {
  TempDir dir("checkpoint_writer_fails");
  auto trained = trained_pair(torch::kCPU);
  qkv::CharTokenizer tokenizer("abc\n");
  qkv::Config config;
  config.model = trained.model->config();
  qkv::CheckpointWriter writer(trained.model, trained.optimizer.get());
  const std::string taken = dir / "last.pt";  // a directory holds the name: the rename fails
  std::filesystem::create_directories(taken + "/inside");
  writer.save({taken}, config, tokenizer, qkv::TrainingState{});
  try {
    writer.wait();
    FAIL() << "no error";
  } catch (const qkv::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(taken), std::string::npos) << e.what();
  }
  writer.wait();  // the error is reported once
}

#define SKIP_WITHOUT_GPU() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine"

TEST(GraphPathsOnCuda, DecodeStepReplaysMatchTheForward) {
  SKIP_WITHOUT_GPU();
  auto model = qkv::testing::random_model(37, 24, 32, 3);
  model->to(torch::kCUDA);
  expect_decode_step_matches_forward(model, 3, 5, 1e-4);
}

TEST(GraphPathsOnCuda, LossEstimatorReplaysGiveTheEagerFigure) {
  SKIP_WITHOUT_GPU();
  TempDir dir("loss_estimator_cuda");
  auto tokens = sample_tokens(dir);
  auto model = qkv::testing::random_model(37, 24, 32, 3, 0.3);
  model->to(torch::kCUDA);
  const auto o = estimator_options();
  const double expected = eager_loss(model, tokens, o);
  qkv::LossEstimator estimator(model, tokens, o);
  for (int run = 0; run < 3; ++run)
    EXPECT_NEAR(estimator.loss_sum().item<double>() / double(o.batches), expected, 1e-5);
}

TEST(GraphPathsOnCuda, CheckpointWriterCopiesFromTheGpu) {
  SKIP_WITHOUT_GPU();
  expect_writer_matches_write_checkpoint(torch::kCUDA);
}

}  // namespace
