// The one training step (TrainingStep), the stages the model's forward reports, and the KV cache.
#include <gtest/gtest.h>

#include <cmath>
#include <typeinfo>

#include "qkv/bench/forward_stages.h"
#include "qkv/kernels/accelerate.h"
#include "qkv/kernels/fused_modules.h"
#include "qkv/model/kv_cache.h"
#include "qkv/train/optimizer_setup.h"
#include "qkv/train/training_step.h"
#include "test_support.h"

namespace {

using qkv::StepStage;

// The tiny config without dropout, so that two models given the same batches compute the same.
qkv::Config step_config(std::vector<std::string> overrides = {}) {
  overrides.push_back("model.dropout=0");
  qkv::Config c = qkv::Config::load(std::string(QKV_SOURCE_DIR) + "/configs/tiny.yaml", overrides);
  c.model.vocab_size = 13;
  return c;
}

qkv::TransformerLM fresh_model(const qkv::Config& c) {
  torch::manual_seed(7);
  qkv::TransformerLM model(c.model);
  model->train();
  return model;
}

qkv::Batch random_batch(const qkv::Config& c, int64_t batch_size, uint64_t seed) {
  torch::manual_seed(seed);
  auto x = torch::randint(0, c.model.vocab_size, {batch_size, c.model.block_size}, torch::kLong);
  auto y = torch::randint(0, c.model.vocab_size, {batch_size, c.model.block_size}, torch::kLong);
  return {x, y};
}

// The reference: the textbook step written out with LibTorch's own ops.
void reference_step(qkv::TransformerLM& model, torch::optim::AdamW& optimizer,
                    const qkv::Batch& batch, double lr, double clip) {
  qkv::set_learning_rate(optimizer, lr);
  auto logits = model(batch.x);
  auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                   batch.y.reshape({-1}));
  optimizer.zero_grad();
  loss.backward();
  if (clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), clip);
  optimizer.torch::optim::AdamW::step();  // LibTorch's own, whatever route qkv::AdamW takes
}

using qkv::testing::copy_parameters;
using qkv::testing::max_param_difference;

TEST(TrainingStep, EqualsTheTextbookStepWithAndWithoutClipping) {
  for (double clip : {0.0, 1e-3}) {
    // The reference kernels: the fused ones round differently (RuntimeKernelsSelects... below).
    auto c = step_config({"train.grad_clip=" + std::to_string(clip), "runtime.kernels=reference"});
    auto model = fresh_model(c), reference = fresh_model(c);
    auto optimizer = qkv::make_adamw(model, c);
    auto reference_optimizer = qkv::make_adamw(reference, c);
    qkv::TrainingStep step(model, *optimizer, c);
    for (uint64_t s = 0; s < 3; ++s) {
      const auto batch = random_batch(c, 4, 100 + s);
      const auto outcome = step.run([&] { return batch; }, 1e-2);
      EXPECT_TRUE(outcome.updated);
      reference_step(reference, *reference_optimizer, batch, 1e-2, clip);
      // Step by step (see copy_parameters): LibTorch 2.x's fused AdamW against optimizer.step().
      EXPECT_LE(qkv::testing::max_param_difference_in_ulps(model, reference), 2)
          << "clip " << clip << " step " << s;
      copy_parameters(model, reference);
    }
  }
  // And clipping matters here: a tiny clip gives other weights than none.
  auto c0 = step_config({"train.grad_clip=0"}), c1 = step_config({"train.grad_clip=0.001"});
  auto m0 = fresh_model(c0), m1 = fresh_model(c1);
  auto o0 = qkv::make_adamw(m0, c0), o1 = qkv::make_adamw(m1, c1);
  const auto batch = random_batch(c0, 4, 5);
  for (int i = 0; i < 3; ++i) {
    qkv::TrainingStep(m0, *o0, c0).run([&] { return batch; }, 1e-2);
    qkv::TrainingStep(m1, *o1, c1).run([&] { return batch; }, 1e-2);
  }
  EXPECT_GT(max_param_difference(m0, m1), 1e-5);
}

// accelerate() installs the modules of a kernel path; TrainingStep trains the model as given
// (it changes no module); both paths compute the same step.
TEST(TrainingStep, BothKernelPathsTrainAlikeAndTheStepLeavesTheModulesAlone) {
  auto fused_config = step_config({"runtime.kernels=fused"});
  auto reference_config = step_config({"runtime.kernels=reference"});
  auto fused = fresh_model(fused_config), reference = fresh_model(reference_config);
  auto kind_of = [](qkv::TransformerLM& m) -> const std::type_info& {
    return typeid(*m->blocks->ptr<qkv::TransformerBlockImpl>(0)->ln1);
  };
  auto untouched = fresh_model(fused_config);
  auto untouched_optimizer = qkv::make_adamw(untouched, fused_config);
  qkv::TrainingStep(untouched, *untouched_optimizer, fused_config);
  EXPECT_EQ(kind_of(untouched), typeid(qkv::LayerNormImpl));
  qkv::accelerate(fused, qkv::KernelPath::kFused);
  qkv::accelerate(reference, qkv::KernelPath::kReference);
  EXPECT_EQ(kind_of(fused), typeid(qkv::FusedLayerNormImpl));
  EXPECT_EQ(kind_of(reference), typeid(qkv::LayerNormImpl));
  // Same parameters under the same names as a model never accelerated.
  EXPECT_EQ(fused->named_parameters().keys(), untouched->named_parameters().keys());
  auto fused_optimizer = qkv::make_adamw(fused, fused_config);
  auto reference_optimizer = qkv::make_adamw(reference, reference_config);
  qkv::TrainingStep fused_step(fused, *fused_optimizer, fused_config);
  qkv::TrainingStep reference_step(reference, *reference_optimizer, reference_config);
  for (uint64_t s = 0; s < 3; ++s) {
    const auto batch = random_batch(fused_config, 4, 200 + s);
    const auto a = fused_step.run([&] { return batch; }, 1e-2);
    const auto b = reference_step.run([&] { return batch; }, 1e-2);
    EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::abs(b.loss)) << "step " << s;
    EXPECT_NEAR(a.grad_norm, b.grad_norm, 1e-4 * b.grad_norm) << "step " << s;
  }
  // No bound on the weights themselves: the key bias's gradient is zero in exact arithmetic, and
  // AdamW scales either path's rounding noise there up to steps of the learning rate's size.
}

TEST(TrainingStep, AccumulatingTwoHalvesEqualsOneWholeBatch) {
  auto whole_cfg = step_config({"train.grad_clip=0.5"});
  auto accum_cfg = step_config({"train.grad_clip=0.5", "train.grad_accum_steps=2"});
  auto whole = fresh_model(whole_cfg), halves = fresh_model(accum_cfg);
  auto whole_opt = qkv::make_adamw(whole, whole_cfg);
  auto halves_opt = qkv::make_adamw(halves, accum_cfg);
  qkv::TrainingStep whole_step(whole, *whole_opt, whole_cfg);
  qkv::TrainingStep halves_step(halves, *halves_opt, accum_cfg);
  for (uint64_t s = 0; s < 3; ++s) {
    const auto a = random_batch(whole_cfg, 3, 200 + s), b = random_batch(whole_cfg, 3, 300 + s);
    const qkv::Batch both{torch::cat({a.x, b.x}), torch::cat({a.y, b.y})};
    const auto w = whole_step.run([&] { return both; }, 1e-2);
    int drawn = 0;
    const auto h = halves_step.run([&] { return drawn++ == 0 ? a : b; }, 1e-2);
    EXPECT_EQ(drawn, 2);
    EXPECT_NEAR(h.loss, w.loss, 1e-5);
    EXPECT_NEAR(h.grad_norm, w.grad_norm, 1e-4 * w.grad_norm);
  }
  EXPECT_LT(max_param_difference(whole, halves), 1e-5);
}

TEST(TrainingStep, ANonFiniteLossChangesNothing) {
  auto c = step_config();
  auto model = fresh_model(c);
  auto optimizer = qkv::make_adamw(model, c);
  {
    torch::NoGradGuard no_grad;
    model->lm_head.fill_(INFINITY);  // logits inf - inf: the loss is NaN
  }
  std::vector<torch::Tensor> before;
  for (auto& p : model->parameters()) before.push_back(p.detach().clone());
  const auto batch = random_batch(c, 4, 1);
  const auto outcome = qkv::TrainingStep(model, *optimizer, c).run([&] { return batch; }, 1e-2);
  EXPECT_FALSE(outcome.updated);
  EXPECT_FALSE(std::isfinite(outcome.loss));
  auto after = model->parameters();
  for (size_t i = 0; i < after.size(); ++i) {
    // Compared bit for bit (NaN-safe): the same bytes.
    EXPECT_TRUE(torch::equal(before[i].view(torch::kInt32), after[i].detach().view(torch::kInt32)))
        << i;
    EXPECT_FALSE(after[i].grad().defined()) << i;
  }
  EXPECT_TRUE(optimizer->state().empty());  // no moments were taken
}

TEST(TrainingStep, ReportsEveryStageInOrder) {
  auto c = step_config({"train.grad_accum_steps=2"});  // tiny: 2 layers
  auto model = fresh_model(c);
  auto optimizer = qkv::make_adamw(model, c);
  std::vector<StepStage> seen;
  const auto hook = std::make_shared<qkv::StageHook>([&](StepStage s) { seen.push_back(s); });
  qkv::mark_forward_stages(model, hook);
  const auto batch = random_batch(c, 2, 3);
  qkv::TrainingStep(model, *optimizer, c).run([&] { return batch; }, 1e-3, *hook);
  std::vector<StepStage> micro = {StepStage::kEmbedding,   StepStage::kAttention,
                                  StepStage::kFeedForward, StepStage::kAttention,
                                  StepStage::kFeedForward, StepStage::kHead,
                                  StepStage::kLoss,        StepStage::kBackward};
  std::vector<StepStage> expected = micro;
  expected.insert(expected.end(), micro.begin(), micro.end());
  expected.push_back(StepStage::kOptimizer);
  ASSERT_EQ(c.model.n_layer, 2);
  EXPECT_EQ(seen, expected);
}

TEST(TransformerLM, MarkedStagesGiveExactlyTheSameLogitsAndParameters) {
  auto model = qkv::testing::random_model(13, 16, 32, 11);
  torch::manual_seed(4);
  auto idx = torch::randint(0, 13, {3, 16}, torch::kLong);
  torch::NoGradGuard no_grad;
  const auto plain = model(idx);
  const auto names = model->named_parameters().keys();
  int stages = 0;
  qkv::mark_forward_stages(model, std::make_shared<qkv::StageHook>([&](StepStage) { ++stages; }));
  EXPECT_TRUE(torch::equal(plain, model(idx)));
  EXPECT_EQ(stages, 1 + 2 * 2);  // embedding, 2 x (attention, feed-forward)
  EXPECT_EQ(model->named_parameters().keys(), names);
}

TEST(KVCache, AppendWritesInPlaceAndReturnsEveryCachedPosition) {
  qkv::KVCache cache(5);
  torch::NoGradGuard no_grad;
  auto k1 = torch::randn({2, 3, 2, 4}), v1 = torch::randn({2, 3, 2, 4});
  auto [k, v] = cache.append(k1, v1);
  EXPECT_EQ(cache.length(), 2);
  EXPECT_TRUE(torch::equal(k, k1));
  EXPECT_TRUE(torch::equal(v, v1));
  const void* storage = k.data_ptr();
  auto k2 = torch::randn({2, 3, 3, 4}), v2 = torch::randn({2, 3, 3, 4});
  std::tie(k, v) = cache.append(k2, v2);
  EXPECT_EQ(cache.length(), 5);
  EXPECT_EQ(k.data_ptr(), storage);  // the same buffer: nothing was copied to grow it
  EXPECT_TRUE(torch::equal(k, torch::cat({k1, k2}, 2)));
  EXPECT_TRUE(torch::equal(v, torch::cat({v1, v2}, 2)));
  try {
    cache.append(torch::randn({2, 3, 1, 4}), torch::randn({2, 3, 1, 4}));
    FAIL() << "appended past the capacity";
  } catch (const std::length_error& e) {
    EXPECT_STREQ(e.what(), "KV cache holds 5 of 5 positions; 1 more do not fit");
  }
  EXPECT_EQ(cache.length(), 5);
}

}  // namespace
