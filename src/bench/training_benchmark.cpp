#include "qkv/bench/training_benchmark.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>

#include "qkv/bench/forward_stages.h"
#include "qkv/eval/perplexity_evaluator.h"
#include "qkv/generate/decode_step.h"
#include "qkv/generate/incremental_decoder.h"
#include "qkv/kernels/accelerate.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/runtime/cuda_device.h"
#include "qkv/runtime/invalid_option.h"
#include "qkv/runtime/median.h"
#include "qkv/runtime/runtime_setup.h"
#include "qkv/train/lr_schedule.h"
#include "qkv/train/memory_estimate.h"
#include "qkv/train/optimizer_setup.h"
#include "qkv/train/training_step.h"

namespace qkv {

namespace {

using Clock = std::chrono::steady_clock;

// A stopwatch that waits for the device first, so GPU work is charged where it is queued.
class Stopwatch {
 public:
  explicit Stopwatch(bool cuda) : cuda_(cuda) { restart(); }
  void restart() {
    sync();
    start_ = Clock::now();
  }
  double lap_ms() {
    sync();
    auto now = Clock::now();
    double ms = std::chrono::duration<double, std::milli>(now - start_).count();
    start_ = now;
    return ms;
  }

 private:
  void sync() {
    if (cuda_) torch::cuda::synchronize();
  }
  bool cuda_;
  Clock::time_point start_;
};

double matmul_gflops(int64_t n, torch::ScalarType dtype, const torch::Device& device) {
  auto opts = torch::TensorOptions().dtype(dtype).device(device);
  auto a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
  Stopwatch watch(device.is_cuda());
  std::vector<double> times;
  for (int i = 0; i < 6; ++i) {
    watch.restart();
    auto c = torch::mm(a, b);
    double ms = watch.lap_ms();
    if (i > 0) times.push_back(ms);  // the first call pays for thread start-up and packing
  }
  // The best run, not the median: a ceiling is what the machine can reach (the clock of this
  // machine's cores varies from run to run by as much as 1.5x).
  return 2.0 * double(n) * n * n / (*std::min_element(times.begin(), times.end()) / 1000.0) / 1e9;
}

double generation_tokens_per_s(TransformerLM& model, bool use_cache) {
  // From one token to a full context: the regime where the cache matters.
  IncrementalDecoder decoder(model, use_cache);
  const int64_t steps = model->config().block_size - 1;
  auto start = Clock::now();
  auto logits = decoder.feed({0});
  for (int64_t i = 0; i < steps; ++i)
    logits = decoder.feed({static_cast<TokenId>(logits.argmax().item<int64_t>())});
  double s = std::chrono::duration<double>(Clock::now() - start).count();
  return double(steps) / s;
}

// `batch` sequences decoded side by side with the KV cache, greedy, the next tokens chosen where
// the model runs (as a serving loop would), each step a DecodeStep (on a GPU, one graph replay):
// new tokens per second over all sequences.
double batched_generation_tokens_per_s(TransformerLM& model, int64_t batch) {
  torch::NoGradGuard no_grad;
  const auto device = model->lm_head_weight().device();
  const int64_t steps = model->config().block_size - 1;
  // One set of caches and one step for both runs, as a server keeps them between requests.
  std::vector<KVCache> caches;
  std::unique_ptr<DecodeStep> step;
  auto decode = [&] {
    for (auto& cache : caches) cache.reset();
    auto first =
        torch::zeros({batch, 1}, torch::TensorOptions().dtype(torch::kLong).device(device));
    auto next = model->forward(first, &caches).select(1, -1).argmax(-1, true);  // (B, 1)
    if (!step) step = std::make_unique<DecodeStep>(model, caches);
    for (int64_t i = 1; i < steps; ++i) next = step->run(next).argmax(-1, true);
    return next;
  };
  decode();  // warm-up: kernel selection, the allocator's first blocks, the graph's capture
  Stopwatch watch(device.is_cuda());
  decode();
  return double(batch * steps) / (watch.lap_ms() / 1000.0);
}

// Adds each stage's time to its share of the breakdown (head and loss share one).
double& share_of(StepBreakdown& b, StepStage stage) {
  switch (stage) {
    case StepStage::kEmbedding:
      return b.embedding;
    case StepStage::kAttention:
      return b.attention;
    case StepStage::kFeedForward:
      return b.feed_forward;
    case StepStage::kHead:
    case StepStage::kLoss:
      return b.head_and_loss;
    case StepStage::kBackward:
      return b.backward;
    case StepStage::kOptimizer:
      break;
  }
  return b.optimizer;
}

// Times `options.steps` training steps after `options.warmup`, through the trainer's own
// TrainingStep on random tokens: the step's median and the median of each stage.
void time_training_steps(const Config& config, const ModelConfig& mc, const torch::Device& device,
                         const BenchmarkOptions& options, BenchmarkReport& r) {
  torch::manual_seed(static_cast<uint64_t>(config.runtime.seed));
  TransformerLM model(mc);
  model->to(device);
  model->train();
  for (auto& p : model->parameters()) r.parameters += p.numel();
  accelerate(model, runtime_kernel_path(config));
  const auto forward_hook = std::make_shared<StageHook>();  // set for the steps timed by stage
  mark_forward_stages(model, forward_hook);
  auto optimizer = make_adamw(model, config);
  TrainingStep training_step(model, *optimizer, config);
  const LrSchedule schedule{config.optim.lr, config.optim.min_lr, config.optim.warmup_steps,
                            options.warmup + 2 * options.steps};
  const int64_t B = config.train.batch_size, T = mc.block_size;
  auto random_batch = [&] {
    return Batch{torch::randint(0, mc.vocab_size, {B, T}, torch::kLong),
                 torch::randint(0, mc.vocab_size, {B, T}, torch::kLong)};
  };

  // On a GPU the CPU queues work ahead, which timing stage by stage (a synchronisation at each)
  // forbids: there whole steps give the step time, and further steps the breakdown (whose stages
  // then sum to more than the step). On a CPU the stage laps cost nothing and one pass gives both.
  const bool separate_breakdown = device.is_cuda();
  Stopwatch watch(device.is_cuda());
  std::vector<double> total, emb, att, ffn, head, back, opt;
  auto timed_step = [&](int64_t step, bool staged) {
    StepBreakdown s;
    watch.restart();
    const StageHook hook = [&](StepStage stage) { share_of(s, stage) += watch.lap_ms(); };
    *forward_hook = staged ? hook : StageHook();
    training_step.run(random_batch, schedule.at(step), *forward_hook);
    *forward_hook = StageHook();
    const double ms = watch.lap_ms();
    return std::make_pair(s, staged ? s.embedding + s.attention + s.feed_forward + s.head_and_loss +
                                          s.backward + s.optimizer + ms
                                    : ms);
  };
  auto record_stages = [&](const StepBreakdown& s) {
    emb.push_back(s.embedding);
    att.push_back(s.attention);
    ffn.push_back(s.feed_forward);
    head.push_back(s.head_and_loss);
    back.push_back(s.backward);
    opt.push_back(s.optimizer);
  };
  for (int64_t step = 0; step < options.warmup + options.steps; ++step) {
    const auto [stages, ms] = timed_step(step, !separate_breakdown);
    if (step < options.warmup) continue;
    total.push_back(ms);
    if (!separate_breakdown) record_stages(stages);
  }
  r.peak_gpu_mb = double(cuda_peak_allocated_bytes()) / (1024.0 * 1024.0);
  if (separate_breakdown)
    for (int64_t step = 0; step < options.steps; ++step)
      record_stages(timed_step(options.warmup + options.steps + step, true).first);
  r.breakdown = {median(emb), median(att), median(ffn), median(head), median(back), median(opt)};
  if (!options.profile.empty())  // the steps as training runs them: replayed graphs on a GPU
    profile_to_trace(options.profile, [&] {
      for (int64_t step = 0; step < 5; ++step) timed_step(options.warmup + step, false);
    });
  r.step_ms = median(total);
  r.tokens_per_s = double(B * T * config.train.grad_accum_steps) / (r.step_ms / 1000.0);
  r.flops_per_step = training_flops_per_step(mc, B * config.train.grad_accum_steps);
  r.achieved_gflops = r.flops_per_step / (r.step_ms / 1000.0) / 1e9;
}

}  // namespace

void BenchmarkOptions::validate() const {
  if (steps <= 0) throw InvalidOption("steps", "must be positive, got " + std::to_string(steps));
  if (warmup < 0) throw InvalidOption("warmup", "must be >= 0, got " + std::to_string(warmup));
  if (matmul_size < 0)
    throw InvalidOption("matmul_size", "must be >= 0, got " + std::to_string(matmul_size));
}

double training_flops_per_step(const ModelConfig& m, int64_t batch_size) {
  const double C = double(m.d_model), F = double(m.ffn_dim()), V = double(m.vocab_size);
  const double T = double(m.block_size), L = double(m.n_layer);
  const double per_token_forward = 2.0 * (L * (4 * C * C + 2 * C * F) + C * V)  // weights
                                   + L * 2.0 * (2.0 * T * C);                   // QK^T and AV
  return 3.0 * per_token_forward * double(batch_size) * T;
}

BenchmarkReport run_benchmark(const Config& config, const BenchmarkOptions& options) {
  options.validate();
  BenchmarkReport r;
  const auto device = torch::Device(resolve_device(config.runtime.device));
  const bool bf16 = config.runtime.dtype == ComputeDtype::kBf16;
  ModelConfig mc = config.model;
  if (mc.vocab_size <= 0) mc.vocab_size = ModelConfig{}.vocab_size;  // "from the tokenizer"
  Config sized = config;
  sized.model = mc;
  if (!device.is_cuda()) check_training_fits_in_memory(sized);
  r.device = device.str();
  r.dtype = to_string(config.runtime.dtype);
  r.batch_size = config.train.batch_size;
  r.block_size = mc.block_size;

  r.gpu = cuda_device_name();
  // A GPU reaches its ceiling only on products far larger than a CPU needs.
  const int64_t n =
      options.matmul_size > 0 ? options.matmul_size : (device.is_cuda() ? 8192 : 2048);
  r.matmul_fp32_gflops = matmul_gflops(n, torch::kFloat32, device);
  r.matmul_bf16_gflops = matmul_gflops(n, torch::kBFloat16, device);
  reset_cuda_peak_memory();

  time_training_steps(config, mc, device, options, r);
  r.mfu = r.achieved_gflops / (bf16 ? r.matmul_bf16_gflops : r.matmul_fp32_gflops);

  if (options.generation) {
    torch::manual_seed(static_cast<uint64_t>(config.runtime.seed));
    TransformerLM model(mc);
    model->to(device);
    model->eval();
    r.generate_cached_tokens_per_s = generation_tokens_per_s(model, true);
    r.generate_uncached_tokens_per_s = generation_tokens_per_s(model, false);
    r.generate_batch1_tokens_per_s = batched_generation_tokens_per_s(model, 1);
    r.generate_batch32_tokens_per_s = batched_generation_tokens_per_s(model, 32);
    auto tokens = torch::randint(0, mc.vocab_size, {32 * mc.block_size + 1}, torch::kInt);
    std::vector<TokenId> ids(tokens.data_ptr<TokenId>(),
                             tokens.data_ptr<TokenId>() + tokens.numel());
    PerplexityOptions eval_options;
    eval_options.batch_size = 8;
    r.eval_tokens_per_s = evaluate_perplexity(model, ids, 0, eval_options).tokens_per_s;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  r.peak_rss_mb = double(usage.ru_maxrss) / 1024.0;
  return r;
}

}  // namespace qkv
