#include "qkv/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "qkv/data/batch_sampler.h"
#include "qkv/data/data_preparer.h"
#include "qkv/report/training_report.h"
#include "qkv/runtime/autocast_scope.h"
#include "qkv/runtime/median.h"
#include "qkv/runtime/progress_line.h"
#include "qkv/runtime/runtime_setup.h"
#include "qkv/train/checkpoint.h"
#include "qkv/train/lr_schedule.h"
#include "qkv/train/optimizer_setup.h"

namespace qkv {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

torch::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

std::string human_count(double v) {
  char buf[32];
  if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

}  // namespace

struct Trainer::Impl {
  Config config;
  TrainerOptions options;
  std::string run_dir;
  torch::Device device{torch::kCPU};
  std::unique_ptr<Tokenizer> tokenizer;
  TransformerLM model{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::shared_ptr<TokenFile> train_tokens, val_tokens;
  std::unique_ptr<BatchSampler> sampler;
  TrainingState state;
  std::shared_ptr<spdlog::logger> log;
  ProgressLine progress;

  bool writer() const { return options.rank == 0; }

  void setup_common(const DatasetMeta& meta) {
    run_dir = config.train.out_dir;
    device = torch::Device(resolve_device(config.runtime.device));
    train_tokens = std::make_shared<TokenFile>(meta.train_path(), meta.dtype);
    val_tokens = std::make_shared<TokenFile>(meta.val_path(), meta.dtype);
    if (tokenizer->vocab_size() != meta.vocab_size)
      throw std::invalid_argument(config.data.dir + " was prepared with a vocabulary of " +
                                  std::to_string(meta.vocab_size) +
                                  " tokens but the model's tokenizer has " +
                                  std::to_string(tokenizer->vocab_size()));
    sampler = std::make_unique<BatchSampler>(train_tokens, config.train.batch_size,
                                             config.model.block_size, config.runtime.seed,
                                             options.rank, options.world_size);
    // Validation must hold at least one window: say so now rather than at the first eval.
    BatchSampler(val_tokens, 1, config.model.block_size, 0);

    auto sinks = spdlog::default_logger()->sinks();
    if (writer()) {
      fs::create_directories(run_dir);
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(run_dir + "/train.log"));
    }
    log = std::make_shared<spdlog::logger>("train", sinks.begin(), sinks.end());
    log->set_level(spdlog::default_logger()->level());
    log->flush_on(spdlog::level::info);  // train.log stays current for `tail -f`
  }

  void build_optimizer() { optimizer = make_adamw(model, config.optim); }

  LrSchedule schedule() const {
    const auto& o = config.optim;
    return {o.lr, o.min_lr, o.warmup_steps,
            o.decay_steps > 0 ? o.decay_steps : config.train.max_steps};
  }

  // Mean loss over eval.batches fixed batches: the same batches at every evaluation (their own
  // seed), so successive figures compare and the training stream is untouched.
  double estimate_loss(const std::shared_ptr<TokenFile>& tokens) {
    torch::NoGradGuard no_grad;
    model->eval();
    AutocastScope autocast(config.runtime.dtype == "bf16");
    BatchSampler eval_sampler(tokens, config.train.batch_size, config.model.block_size,
                              config.runtime.seed + 1, options.rank, options.world_size);
    double total = 0;
    for (int64_t i = 0; i < config.eval.batches; ++i) {
      auto batch = eval_sampler.next();
      auto logits = model(batch.x.to(device));
      total +=
          TransformerLMImpl::loss(logits.to(torch::kFloat32), batch.y.to(device)).item<double>();
    }
    model->train();
    return total / double(config.eval.batches);
  }

  std::string save(const std::string& name) {
    if (!writer()) return "";
    state.sampler_state = sampler->state();
    state.torch_rng_state = cpu_rng_state();
    const std::string path = run_dir + "/" + name;
    CheckpointWriter::write(path, model, optimizer.get(), config, *tokenizer, state);
    return path;
  }

  void append_metrics(const nlohmann::json& record) {
    if (!writer()) return;
    std::ofstream out(run_dir + "/metrics.jsonl", std::ios::app);
    out << record.dump() << "\n";
  }

  // A report is a view of the run, not part of it: failing to write one must not end training.
  void write_report() {
    if (!writer()) return;
    try {
      info("report: " + write_training_report(run_dir));
    } catch (const std::exception& e) {
      progress.clear();
      log->warn("report.html not written: {}", e.what());
    }
  }

  void info(const std::string& line) {
    progress.clear();
    log->info(line);
  }
};

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::~Trainer() = default;
const Config& Trainer::config() const {
  return impl_->config;
}

Trainer::Trainer(const Config& config, TrainerOptions options) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.config = config;
  m.options = options;
  const auto meta = DatasetMeta::load(config.data.dir);
  m.tokenizer = meta.load_tokenizer();
  m.config.model.vocab_size = m.tokenizer->vocab_size();
  m.config.validate();
  for (const char* name : {"last.pt", "best.pt"})
    if (fs::exists(fs::path(config.train.out_dir) / name))
      throw std::invalid_argument("run directory " + config.train.out_dir + " already holds " +
                                  name + ": continue it with `qkv train --resume " +
                                  config.train.out_dir +
                                  "` or start a new one with --set train.out_dir=DIR");
  m.setup_common(meta);
  torch::manual_seed(static_cast<uint64_t>(config.runtime.seed));
  m.model = TransformerLM(m.config.model);
  m.model->to(m.device);
  m.build_optimizer();
  if (m.writer()) {
    std::ofstream(m.run_dir + "/config.yaml") << m.config.to_yaml();
    fs::remove(m.run_dir + "/metrics.jsonl");
  }
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& run_dir,
                                         const std::vector<std::string>& overrides,
                                         TrainerOptions options) {
  const std::string path = run_dir + "/last.pt";
  if (!fs::exists(path)) throw CheckpointError(run_dir + ": no last.pt to resume from");
  auto ckpt = Checkpoint::load(path);
  auto impl = std::make_unique<Impl>();
  auto& m = *impl;
  m.config = ckpt.config;
  for (const auto& o : overrides) {
    // The stored weights were built from the stored model section; a changed key there would be
    // written to config.yaml but not take effect.
    if (o.rfind("model.", 0) == 0)
      throw std::invalid_argument("--set " + o + ": model keys cannot change when resuming");
    m.config.apply_override(o);
  }
  m.config.train.out_dir = run_dir;
  m.config.validate();
  m.options = options;
  m.tokenizer = std::move(ckpt.tokenizer);
  m.setup_common(DatasetMeta::load(m.config.data.dir));
  m.model = ckpt.model;
  m.model->to(m.device);
  m.build_optimizer();
  ckpt.load_optimizer(*m.optimizer);
  m.state = ckpt.state;
  m.sampler->set_state(ckpt.state.sampler_state);
  if (ckpt.state.torch_rng_state.defined()) set_cpu_rng_state(ckpt.state.torch_rng_state);
  if (m.writer()) std::ofstream(m.run_dir + "/config.yaml") << m.config.to_yaml();
  m.info("resuming " + run_dir + " from step " + std::to_string(m.state.step));
  return std::unique_ptr<Trainer>(new Trainer(std::move(impl)));
}

TrainResult Trainer::run() {
  auto& m = *impl_;
  const auto& cfg = m.config;
  const int64_t max_steps = cfg.train.max_steps;
  const int64_t accum = cfg.train.grad_accum_steps;
  const double tokens_per_step =
      double(cfg.train.batch_size * cfg.model.block_size * accum * m.options.world_size);
  const LrSchedule schedule = m.schedule();
  const bool bf16 = cfg.runtime.dtype == "bf16";
  auto params = m.model->parameters();

  int64_t n_params = 0;
  for (auto& p : params) n_params += p.numel();
  m.info("model: " + std::to_string(cfg.model.n_layer) + " layers, " +
         std::to_string(cfg.model.n_head) + " heads, d_model " + std::to_string(cfg.model.d_model) +
         ", context " + std::to_string(cfg.model.block_size) + ", vocab " +
         std::to_string(cfg.model.vocab_size) + ", " + human_count(double(n_params)) +
         " parameters; " + cfg.runtime.dtype + " on " + m.device.str());
  m.info("training to step " + std::to_string(max_steps) + " (" + human_count(tokens_per_step) +
         " tokens/step), run directory " + m.run_dir);

  TrainResult result;
  result.run_dir = m.run_dir;
  const auto run_start = Clock::now();
  std::vector<double> step_ms;
  m.model->train();

  auto evaluate = [&](int64_t step) {
    EvalRecord e{step, m.estimate_loss(m.train_tokens), m.estimate_loss(m.val_tokens)};
    result.evals.push_back(e);
    char line[160];
    std::snprintf(line, sizeof line, "eval step %lld: train loss %.4f, val loss %.4f",
                  (long long)step, e.train_loss, e.val_loss);
    m.info(line);
    m.append_metrics(
        {{"type", "eval"}, {"step", step}, {"train_loss", e.train_loss}, {"val_loss", e.val_loss}});
    if (e.val_loss < m.state.best_val_loss) {
      m.state.best_val_loss = e.val_loss;
      m.state.best_step = step;
      m.save("best.pt");
    }
  };

  while (m.state.step < max_steps) {
    const auto t0 = Clock::now();
    const double lr = schedule.at(m.state.step);
    set_learning_rate(*m.optimizer, lr);

    double loss_sum = 0;
    for (int64_t micro = 0; micro < accum; ++micro) {
      auto batch = m.sampler->next();
      torch::Tensor loss;
      {
        AutocastScope autocast(bf16);
        auto logits = m.model(batch.x.to(m.device));
        loss = TransformerLMImpl::loss(logits.to(torch::kFloat32), batch.y.to(m.device));
      }
      (loss / double(accum)).backward();
      loss_sum += loss.item<double>();
    }
    const double loss = loss_sum / double(accum);
    if (!std::isfinite(loss)) {
      m.progress.clear();
      const std::string value = std::isnan(loss) ? "nan" : (loss > 0 ? "inf" : "-inf");
      throw TrainingDiverged("loss became " + value + " at step " +
                             std::to_string(m.state.step + 1) +
                             "; training stopped without saving (lower optim.lr?); the last good "
                             "checkpoint in " +
                             m.run_dir + " is untouched");
    }
    const double max_norm = cfg.train.grad_clip > 0 ? cfg.train.grad_clip : INFINITY;
    const double grad_norm = torch::nn::utils::clip_grad_norm_(params, max_norm);
    m.optimizer->step();
    // Gradients to none rather than zero: the next backward writes instead of accumulating.
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
    ++m.state.step;

    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    step_ms.push_back(ms);
    StepRecord rec{m.state.step, loss, lr, grad_norm, ms, tokens_per_step / (ms / 1000.0)};
    result.steps.push_back(rec);
    m.append_metrics({{"type", "step"},
                      {"step", rec.step},
                      {"loss", rec.loss},
                      {"lr", rec.lr},
                      {"grad_norm", rec.grad_norm},
                      {"ms", rec.ms},
                      {"tokens_per_s", rec.tokens_per_s}});

    // ETA from the median of recent steps: robust to the odd slow step (eval, checkpoint).
    const size_t window = std::min<size_t>(step_ms.size(), 50);
    const double recent =
        median(std::vector<double>(step_ms.end() - static_cast<long>(window), step_ms.end()));
    const double eta = recent / 1000.0 * double(max_steps - m.state.step);
    char line[256];
    std::snprintf(line, sizeof line,
                  "step %lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.1f ms | %s tok/s | "
                  "ETA %s",
                  (long long)m.state.step, (long long)max_steps, loss, lr, grad_norm, ms,
                  human_count(tokens_per_step / (recent / 1000.0)).c_str(),
                  ProgressLine::duration(eta).c_str());
    if (m.state.step % cfg.train.log_every == 0 || m.state.step == 1) m.info(line);
    m.progress.update(ProgressLine::bar(double(m.state.step) / double(max_steps)) + " " + line);

    if (m.state.step % cfg.eval.every == 0 || m.state.step == max_steps) evaluate(m.state.step);
    const bool stop = m.options.stop && m.options.stop->load();
    if (stop || m.state.step == max_steps ||
        (cfg.checkpoint.every > 0 && m.state.step % cfg.checkpoint.every == 0)) {
      result.last_checkpoint = m.save("last.pt");
      if (cfg.checkpoint.keep_periodic && !stop && m.state.step != max_steps) {
        char name[32];
        std::snprintf(name, sizeof name, "step_%07lld.pt", (long long)m.state.step);
        m.save(name);
      }
      if (cfg.checkpoint.report && !stop && m.state.step != max_steps) m.write_report();
    }
    if (stop) {
      result.interrupted = true;
      m.info("stopped at step " + std::to_string(m.state.step) + "; checkpoint " +
             result.last_checkpoint + "; continue with: qkv train --resume " + m.run_dir);
      break;
    }
  }
  m.progress.clear();
  m.write_report();
  result.final_step = m.state.step;
  result.best_val_loss = m.state.best_val_loss;
  result.best_step = m.state.best_step;
  result.wall_seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
  result.median_step_ms = median(step_ms);
  if (result.last_checkpoint.empty() && m.writer()) result.last_checkpoint = m.run_dir + "/last.pt";
  return result;
}

}  // namespace qkv
