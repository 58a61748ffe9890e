// qkv on a CUDA device: the same numbers as on the CPU, training that learns, checkpoints that
// cross between the two, and every command. Skipped, with the reason, where there is no GPU.
#include <gtest/gtest.h>

#include <torch/cuda.h>
#include <nlohmann/json.hpp>

#include "qkv/report/run_metrics.h"
#include "qkv/runtime/cuda_device.h"
#include "qkv/train/adamw.h"
#include "qkv/train/checkpoint.h"
#include "qkv/train/optimizer_setup.h"
#include "qkv/train/trainer.h"
#include "qkv/train/training_step.h"
#include "test_support.h"

namespace {

using qkv::testing::prepared_tiny;
using qkv::testing::run_qkv;
using qkv::testing::TempDir;

#define SKIP_WITHOUT_GPU()                                                                         \
  if (!torch::cuda::is_available())                                                                \
  GTEST_SKIP() << (qkv::built_with_cuda() ? "no CUDA device on this machine"                       \
                                          : "this LibTorch was built without CUDA (" TORCH_VERSION \
                                            ")")

const torch::Device kCuda(torch::kCUDA);

TEST(Cuda, LogitsEqualTheCpusInFp32) {
  SKIP_WITHOUT_GPU();
  auto cpu_model = qkv::testing::random_model(50, 32, 64, 11);
  auto cuda_model = qkv::testing::random_model(50, 32, 64, 11);
  cuda_model->to(kCuda);
  torch::manual_seed(12);
  const auto idx = torch::randint(0, 50, {4, 32}, torch::kLong);
  torch::NoGradGuard no_grad;
  const auto on_cpu = cpu_model(idx);
  const auto on_cuda = cuda_model(idx.to(kCuda)).cpu();
  EXPECT_LT((on_cpu - on_cuda).abs().max().item<double>(), 1e-4);
  // The inspection path (explicit attention, weights returned) agrees too.
  const auto cpu_capture = cpu_model->inspect(idx);
  const auto cuda_capture = cuda_model->inspect(idx.to(kCuda));
  for (size_t l = 0; l < cpu_capture.attention_weights.size(); ++l)
    EXPECT_LT((cpu_capture.attention_weights[l] - cuda_capture.attention_weights[l].cpu())
                  .abs()
                  .max()
                  .item<double>(),
              1e-5);
}

TEST(Cuda, FiftyTrainingStepsReduceTheLossInFp32AndBf16) {
  SKIP_WITHOUT_GPU();
  for (const char* dtype : {"fp32", "bf16"}) {
    TempDir dir(std::string("cuda_train_") + dtype);
    auto config = prepared_tiny(
        dir, {"train.max_steps=50", "runtime.device=cuda", std::string("runtime.dtype=") + dtype,
              "optim.lr=1e-2", "eval.every=50", "train.log_every=1"});
    const auto result = qkv::Trainer(config).run();
    ASSERT_EQ(result.final_step, 50);
    // The first logged loss is near ln(vocab); after 50 steps it is well below.
    auto metrics = qkv::RunMetrics::load(dir / "run/metrics.jsonl");
    ASSERT_FALSE(metrics.steps.empty());
    EXPECT_LT(metrics.steps.back().loss, metrics.steps.front().loss - 0.5) << dtype;
  }
}

TEST(Cuda, ACheckpointWrittenOnTheGpuLoadsOnTheCpuWithIdenticalWeights) {
  SKIP_WITHOUT_GPU();
  TempDir dir("cuda_ckpt");
  auto config = prepared_tiny(dir, {"train.max_steps=10", "runtime.device=cuda"});
  qkv::Trainer(config).run();
  auto ckpt = qkv::Checkpoint::load(dir / "run/last.pt");
  for (const auto& p : ckpt.model->parameters()) EXPECT_TRUE(p.device().is_cpu());
  auto on_gpu = qkv::Checkpoint::load(dir / "run/last.pt");
  on_gpu.model->to(kCuda);
  auto a = ckpt.model->parameters(), b = on_gpu.model->parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i].cpu())) << i;
}

TEST(Cuda, ARunStartedOnTheCpuResumesOnTheGpuAndBack) {
  SKIP_WITHOUT_GPU();
  TempDir dir("cuda_resume");
  auto config = prepared_tiny(dir, {"train.max_steps=10"});
  qkv::Trainer(config).run();
  // The optimizer's moments come back on the CPU and must follow the model to the GPU.
  {  // each trainer holds the run directory until it is gone
    auto gpu = qkv::Trainer::resume(dir / "run", {"runtime.device=cuda", "train.max_steps=20"});
    EXPECT_EQ(gpu->run().final_step, 20);
  }
  auto cpu = qkv::Trainer::resume(dir / "run", {"runtime.device=cpu", "train.max_steps=30"});
  EXPECT_EQ(cpu->run().final_step, 30);
}

TEST(Cuda, EveryCommandRunsOnTheGpu) {
  SKIP_WITHOUT_GPU();
  TempDir dir("cuda_commands");
  prepared_tiny(dir);
  const std::string config = std::string(QKV_SOURCE_DIR) + "/configs/tiny.yaml";
  const std::string sets = " --set data.files=" + (dir / "corpus.txt") +
                           " --set data.dir=" + (dir / "data") +
                           " --set train.out_dir=" + (dir / "run") + " --set train.max_steps=10";
  ASSERT_EQ(run_qkv("train " + config + sets + " --set runtime.device=cuda").exit_code, 0);
  const std::string run = dir / "run";
  for (const std::string& command :
       {"generate " + run + " --max-new-tokens 20 --device cuda",
        "eval " + run + " --data " + (dir / "corpus.txt") + " --device cuda",
        "attention " + run + " --text 'the king' --out " + (dir / "attention") + " --device cuda",
        "embed " + run +
            " --word bank --text 'the river bank.' --text 'the money bank.' --device cuda",
        "report " + run + " --device cuda",
        "bench " + config + " --steps 2 --warmup 1 --set runtime.device=cuda"})
    EXPECT_EQ(run_qkv(command).exit_code, 0) << command;
}

TEST(Cuda, BenchReportsTheGpuAndItsPeakMemory) {
  SKIP_WITHOUT_GPU();
  auto r = run_qkv("bench " + std::string(QKV_SOURCE_DIR) +
                   "/configs/tiny.yaml --steps 3 --warmup 1 --set runtime.device=cuda --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["gpu"].get<std::string>().empty());
  EXPECT_GT(j["peak_gpu_mb"].get<double>(), 0.0);
  EXPECT_GT(j["matmul_bf16_gflops"].get<double>(), j["matmul_fp32_gflops"].get<double>());
}

}  // namespace

namespace {

qkv::Config graph_config(bool graph) {
  qkv::Config c =
      qkv::Config::load(std::string(QKV_SOURCE_DIR) + "/configs/tiny.yaml",
                        {"model.dropout=0", "runtime.device=cuda", "train.grad_clip=0.5",
                         std::string("runtime.cuda_graph=") + (graph ? "true" : "false")});
  c.model.vocab_size = 13;
  return c;
}

qkv::Batch fixed_batch(uint64_t seed) {
  torch::manual_seed(seed);
  return {torch::randint(0, 13, {4, 16}, torch::kLong),
          torch::randint(0, 13, {4, 16}, torch::kLong)};
}

TEST(Cuda, ReplayedGraphStepsEqualEagerSteps) {
  SKIP_WITHOUT_GPU();
  auto run = [](bool graph, std::vector<double>* losses) {
    auto c = graph_config(graph);
    torch::manual_seed(7);
    qkv::TransformerLM model(c.model);
    model->to(kCuda);
    model->train();
    auto optimizer = qkv::make_adamw(model, c);
    qkv::TrainingStep step(model, *optimizer, c);
    for (uint64_t s = 0; s < 8; ++s) {
      const auto batch = fixed_batch(100 + s);
      losses->push_back(step.run([&] { return batch; }, 1e-2).loss);
    }
    EXPECT_EQ(step.replaying_graph(), graph);
    return model;
  };
  std::vector<double> eager_losses, graph_losses;
  auto eager = run(false, &eager_losses);
  auto graphed = run(true, &graph_losses);
  for (size_t i = 0; i < eager_losses.size(); ++i)
    EXPECT_NEAR(graph_losses[i], eager_losses[i], 1e-4) << "step " << i + 1;
  auto a = eager->parameters(), b = graphed->parameters();
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_LT((a[i] - b[i]).abs().max().item<double>(), 1e-4) << i;
}

TEST(Cuda, AReplayedStepWithANonFiniteLossChangesNothing) {
  SKIP_WITHOUT_GPU();
  auto c = graph_config(true);
  torch::manual_seed(7);
  qkv::TransformerLM model(c.model);
  model->to(kCuda);
  auto optimizer = qkv::make_adamw(model, c);
  qkv::TrainingStep step(model, *optimizer, c);
  const auto batch = fixed_batch(1);
  for (int i = 0; i < 4; ++i) step.run([&] { return batch; }, 1e-2);
  ASSERT_TRUE(step.replaying_graph());
  {
    torch::NoGradGuard no_grad;
    model->lm_head.fill_(INFINITY);  // logits inf - inf: the loss is NaN
  }
  std::vector<torch::Tensor> before;
  for (auto& p : model->parameters()) before.push_back(p.detach().clone());
  const auto moment =
      static_cast<torch::optim::AdamWParamState&>(*optimizer->state().begin()->second)
          .exp_avg()
          .clone();
  const auto outcome = step.run([&] { return batch; }, 1e-2);
  EXPECT_FALSE(outcome.updated);
  auto after = model->parameters();
  for (size_t i = 0; i < after.size(); ++i)
    EXPECT_TRUE(torch::equal(before[i].view(torch::kInt32), after[i].detach().view(torch::kInt32)))
        << i;
  EXPECT_TRUE(torch::equal(
      moment,
      static_cast<torch::optim::AdamWParamState&>(*optimizer->state().begin()->second).exp_avg()));
}

}  // namespace
