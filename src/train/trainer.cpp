#include "qkv/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "qkv/data/batch_sampler.h"
#include "qkv/data/data_preparer.h"
#include "qkv/io/file_bytes.h"
#include "qkv/kernels/accelerate.h"
#include "qkv/runtime/median.h"
#include "qkv/runtime/progress_line.h"
#include "qkv/runtime/runtime_setup.h"
#include "qkv/train/adamw.h"
#include "qkv/train/checkpoint.h"
#include "qkv/train/checkpoint_writer.h"
#include "qkv/train/data_parallel.h"
#include "qkv/train/loss_estimator.h"
#include "qkv/train/lr_schedule.h"
#include "qkv/train/memory_estimate.h"
#include "qkv/train/optimizer_setup.h"
#include "qkv/train/run_directory.h"
#include "qkv/train/training_step.h"

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

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

RunDirectoryInUse::RunDirectoryInUse(const std::string& run_dir, const std::string& file)
    : std::invalid_argument("run directory " + run_dir + " already holds " + file),
      run_dir_(run_dir) {}

struct Trainer::Impl {
  Config config;
  TrainerOptions options;
  std::string run_dir;
  std::unique_ptr<RunDirectory> directory;  // rank 0's: the others write nothing
  std::unique_ptr<DataParallelJob> job;
  std::string run_id;         // the run's, in its directory and every checkpoint
  int64_t resumed_from = -1;  // the checkpoint's step when resuming
  bool writing = false;       // the run directory changes from the first step on
  torch::Device device{torch::kCPU};
  std::unique_ptr<Tokenizer> tokenizer;
  TransformerLM model{nullptr};
  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<TrainingStep> training_step;
  std::shared_ptr<TokenFile> train_tokens, val_tokens;
  std::unique_ptr<BatchSampler> sampler;
  std::unique_ptr<LossEstimator> train_loss, val_loss;  // made at the first evaluation
  std::vector<std::string> due;                         // checkpoint files to write after this step
  std::unique_ptr<CheckpointWriter> checkpoints;        // made at the first save
  TrainingState state;
  std::shared_ptr<spdlog::logger> log;
  ProgressLine progress;
  TrainResult result;
  std::vector<double> step_ms, allreduce_ms;

  int rank() const { return options.launch ? options.launch->rank : 0; }
  int world_size() const { return job ? job->world_size() : 1; }
  bool distributed() const { return world_size() > 1; }
  bool writer() const { return rank() == 0; }
  double tokens_per_step() const {
    return double(config.train.batch_size * config.model.block_size *
                  config.train.grad_accum_steps * world_size());
  }

  // Joins the data-parallel job (a job of one without a launch environment): before any rank
  // reads data.
  void join_job() {
    job = std::make_unique<DataParallelJob>(options.launch, config.runtime);
    device = job->device();
  }

  void setup_common(const DatasetMeta& meta) {
    run_dir = config.train.out_dir;
    if (tokenizer->vocab_size() != meta.vocab_size)
      throw std::invalid_argument(config.data.dir + " was prepared with a vocabulary of " +
                                  std::to_string(meta.vocab_size) +
                                  " tokens but the model's tokenizer has " +
                                  std::to_string(tokenizer->vocab_size()));
    train_tokens = meta.open_checked("train");
    val_tokens = meta.open_checked("val");
    sampler = std::make_unique<BatchSampler>(train_tokens, config.train.batch_size,
                                             config.model.block_size, config.runtime.seed, rank(),
                                             world_size());
    // Validation must hold at least one window: say so now rather than at the first eval.
    BatchSampler(val_tokens, 1, config.model.block_size, 0);

    auto sinks = spdlog::default_logger()->sinks();
    if (directory) sinks.push_back(directory->early_log());
    log = std::make_shared<spdlog::logger>("train", sinks.begin(), sinks.end());
    // The other ranks say only what goes wrong: rank 0 speaks for the job.
    log->set_level(writer() ? spdlog::default_logger()->level() : spdlog::level::warn);
    log->flush_on(spdlog::level::info);  // train.log stays current for `tail -f`
    // A log that cannot be written stops the run, as a checkpoint that cannot be written does.
    log->set_error_handler([](const std::string& message) {
      throw RunWriteError("cannot write the training log: " + message);
    });
  }

  // Rank 0 claims the run directory (creating it); log lines wait for its train.log.
  void claim_directory(const std::string& dir) {
    if (!writer()) return;
    directory = std::make_unique<RunDirectory>(dir);
    if (log) log->sinks().push_back(directory->early_log());
  }

  // After the first step: the run's id, config.yaml, the metrics and train.log (RunDirectory).
  void begin_writing() {
    writing = true;
    if (directory) directory->begin(config, run_id, resumed_from, *log);
  }

  // Fine-tuning: the weights of the checkpoint `path`, by name; the data must have been
  // tokenized by its tokenizer (prepare_data with it: adopt_init_from).
  void start_from(const std::string& path) {
    auto source = Checkpoint::load(path);
    if (tokenizer_file_bytes(*source.tokenizer) != tokenizer_file_bytes(*tokenizer))
      throw std::invalid_argument(config.data.dir + " was tokenized by another tokenizer than " +
                                  "train.init_from's (" + source.path +
                                  "); prepare the data again with train.init_from set");
    torch::NoGradGuard no_grad;
    const auto from = source.model->named_parameters();
    for (auto& p : model->named_parameters()) {
      const torch::Tensor* s = from.find(p.key());
      // A shorter context (model.block_size) keeps the first rows of learned positions.
      if (s && p.key() == "pos_emb.weight" && s->size(0) > p.value().size(0)) {
        p.value().copy_(s->slice(0, 0, p.value().size(0)));
        continue;
      }
      if (!s || s->sizes() != p.value().sizes())
        throw std::invalid_argument("train.init_from " + source.path + ": parameter " + p.key() +
                                    (s ? " has another shape" : " is missing") +
                                    "; the model keys must be the source run's");
      p.value().copy_(*s);
    }
    info("weights from " + source.path + " (step " + std::to_string(source.state.step) +
         "); the optimizer and the schedule start afresh");
  }

  void build_optimizer() {
    // The engine's modules for runtime.kernels, in place of the reference ones (same parameters).
    accelerate(model, runtime_kernel_path(config));
    optimizer = make_adamw(model, config);
    training_step = std::make_unique<TrainingStep>(model, *optimizer, config, job->group());
  }

  LrSchedule schedule() const {
    const auto& o = config.optim;
    return {o.lr, o.min_lr, o.warmup_steps,
            o.decay_steps > 0 ? o.decay_steps : config.train.max_steps};
  }

  // Mean loss over eval.batches fixed batches: the same batches at every evaluation (their own
  // seed), so successive figures compare and the training stream is untouched.
  double estimate_loss(std::unique_ptr<LossEstimator>& estimator,
                       const std::shared_ptr<TokenFile>& tokens) {
    if (!estimator) {
      LossEstimatorOptions o;
      o.batches = config.eval.batches;
      o.batch_size = config.train.batch_size;
      o.block_size = config.model.block_size;
      o.seed = config.runtime.seed + 1;
      o.rank = rank();
      o.world_size = world_size();
      o.bf16 = config.runtime.dtype == ComputeDtype::kBf16;
      estimator = std::make_unique<LossEstimator>(model, tokens, o);
    }
    auto total = estimator->loss_sum();
    job->sum(total);  // the mean over every rank's share
    return total.item<double>() / double(config.eval.batches * world_size());
  }

  // Every rank calls it (the ranks' dropout generators travel to rank 0); rank 0 hands the files
  // due after this step to the writer, which writes them off this thread.
  void save_due() {
    if (due.empty()) return;
    const auto t0 = Clock::now();
    flush_metrics();
    state.world_size = world_size();
    state.run_id = run_id;
    if (distributed()) {
      job->check_weights_agree(*model, state.step);
      state.rank_rng_states = job->gather(cpu_rng_state());
    }
    std::vector<std::string> paths;
    for (const auto& name : due) paths.push_back(run_dir + "/" + name);
    due.clear();
    if (!writer()) return;
    state.sampler_state = sampler->state();
    state.torch_rng_state = cpu_rng_state();
    if (!checkpoints) checkpoints = std::make_unique<CheckpointWriter>(model, optimizer.get());
    checkpoints->save(paths, config, *tokenizer, state);
    result.checkpoint_seconds += ms_since(t0) / 1000.0;
  }

  void append_metrics(const nlohmann::json& record) {
    if (directory) directory->append_metrics(record);
  }

  void flush_metrics() {
    if (directory) directory->flush_metrics();
  }

  void info(const std::string& line) {
    progress.clear();
    log->info(line);
  }

  // --- the phases of run() ---------------------------------------------------------------------

  void log_start() {
    const auto& c = config;
    int64_t n_params = 0;
    for (auto& p : model->parameters()) n_params += p.numel();
    info("model: " + std::to_string(c.model.n_layer) + " layers, " +
         std::to_string(c.model.n_head) + " heads, d_model " + std::to_string(c.model.d_model) +
         ", context " + std::to_string(c.model.block_size) + ", vocab " +
         std::to_string(c.model.vocab_size) + ", " + human_count(double(n_params)) +
         " parameters; " + to_string(c.runtime.dtype) + " on " + device.str());
    info("training to step " + std::to_string(c.train.max_steps) + " (" +
         human_count(tokens_per_step()) + " tokens/step), run directory " + run_dir);
  }

  // One optimizer step through TrainingStep; its time is the step's alone (not the bookkeeping
  // after it), the figure `qkv bench` measures too.
  StepRecord train_one_step(const LrSchedule& schedule) {
    const double lr = schedule.at(state.step);
    const auto t0 = Clock::now();
    const auto outcome = training_step->run([&] { return sampler->next(); }, lr);
    const double ms = ms_since(t0);
    if (!outcome.updated) {
      progress.clear();
      const double loss = outcome.loss;
      const std::string value = std::isnan(loss) ? "nan" : (loss > 0 ? "inf" : "-inf");
      throw TrainingDiverged("loss became " + value + " at step " + std::to_string(state.step + 1) +
                             "; training stopped without saving (lower optim.lr?); " +
                             (fs::exists(run_dir + "/last.pt")
                                  ? "the last good checkpoint in " + run_dir + " is untouched"
                                  : "no checkpoint had been written to " + run_dir + " yet"));
    }
    ++state.step;
    if (!writing) begin_writing();
    step_ms.push_back(ms);
    result.step_seconds += ms / 1000.0;
    if (distributed()) allreduce_ms.push_back(outcome.allreduce_ms);
    StepRecord rec{state.step,        outcome.loss, lr,
                   outcome.grad_norm, ms,           tokens_per_step() / (ms / 1000.0)};
    result.steps.push_back(rec);
    nlohmann::json record = {{"type", "step"},
                             {"step", rec.step},
                             {"loss", rec.loss},
                             {"lr", rec.lr},
                             {"grad_norm", rec.grad_norm},
                             {"ms", rec.ms},
                             {"tokens_per_s", rec.tokens_per_s}};
    if (distributed()) record["allreduce_ms"] = outcome.allreduce_ms;
    append_metrics(record);
    return rec;
  }

  void log_progress(const StepRecord& rec) {
    const int64_t max_steps = config.train.max_steps;
    // ETA from the median of recent steps: robust to the odd slow step (eval, checkpoint).
    const size_t window = std::min<size_t>(step_ms.size(), 50);
    const double recent =
        median(std::vector<double>(step_ms.end() - static_cast<long>(window), step_ms.end()));
    const double eta = recent / 1000.0 * double(max_steps - rec.step);
    char line[256];
    std::snprintf(line, sizeof line,
                  "step %lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.1f ms | %s tok/s | "
                  "ETA %s",
                  (long long)rec.step, (long long)max_steps, rec.loss, rec.lr, rec.grad_norm,
                  rec.ms, human_count(tokens_per_step() / (recent / 1000.0)).c_str(),
                  ProgressLine::duration(eta).c_str());
    if (rec.step % config.train.log_every == 0 || rec.step == 1) info(line);
    progress.update(ProgressLine::bar(double(rec.step) / double(max_steps)) + " " + line);
  }

  void evaluate(int64_t step) {
    const auto t0 = Clock::now();
    EvalRecord e{step, estimate_loss(train_loss, train_tokens),
                 estimate_loss(val_loss, val_tokens)};
    const double ms = ms_since(t0);
    result.eval_seconds += ms / 1000.0;
    result.evals.push_back(e);
    char line[160];
    std::snprintf(line, sizeof line, "eval step %lld: train loss %.4f, val loss %.4f (%.0f ms)",
                  (long long)step, e.train_loss, e.val_loss, ms);
    info(line);
    append_metrics({{"type", "eval"},
                    {"step", step},
                    {"train_loss", e.train_loss},
                    {"val_loss", e.val_loss},
                    {"ms", ms}});
    if (e.val_loss < state.best_val_loss) {
      state.best_val_loss = e.val_loss;
      state.best_step = step;
      due.push_back("best.pt");
    }
  }

  // last.pt always; at a periodic checkpoint (not a stop, not the last step) also step_N.pt when
  // kept, and the after_checkpoint observer when checkpoint.report is true.
  void save_checkpoints(bool stopping) {
    due.push_back("last.pt");
    const bool periodic = !stopping && state.step != config.train.max_steps;
    if (periodic && config.checkpoint.keep_periodic) {
      char name[32];
      std::snprintf(name, sizeof name, "step_%07lld.pt", (long long)state.step);
      due.push_back(name);
    }
    save_due();
    if (writer()) result.last_checkpoint = run_dir + "/last.pt";
    // Only when asked: the observer reads the files, so calling it waits for their write, which
    // otherwise goes on beside training (a wait at every checkpoint was 0.8 s of each 250 steps of
    // the large config on an H200: 16.8 s of a 78.4 s run).
    if (periodic && config.checkpoint.report) notify_checkpoint(/*end_of_run=*/false);
  }

  // An observer is a view of the run, not part of it: failing must not end training.
  void notify_checkpoint(bool end_of_run) {
    if (!writer() || !writing || !options.after_checkpoint) return;
    if (checkpoints) checkpoints->wait();  // the observer reads the files just written
    try {
      const std::string line = options.after_checkpoint(config, end_of_run);
      if (!line.empty()) info(line);
    } catch (const std::exception& e) {
      progress.clear();
      log->warn("after checkpoint: {}", e.what());
    }
  }

  TrainResult finish(Clock::time_point run_start) {
    flush_metrics();
    if (checkpoints) {
      const auto t0 = Clock::now();
      checkpoints->wait();
      result.checkpoint_seconds += ms_since(t0) / 1000.0;
    }
    progress.clear();
    notify_checkpoint(/*end_of_run=*/true);
    result.run_dir = run_dir;
    result.final_step = state.step;
    result.best_val_loss = state.best_val_loss;
    result.best_step = state.best_step;
    result.wall_seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
    result.median_step_ms = median(step_ms);
    if (!allreduce_ms.empty()) {
      result.median_allreduce_ms = median(allreduce_ms);
      const double mb = double(training_step->allreduce_bytes_per_step()) / 1e6;
      char line[200];
      std::snprintf(line, sizeof line,
                    "%d ranks (%s): gradient all-reduce %.1f ms/step median, %.2f MB per rank per "
                    "step, %.2f GB/s algorithm bandwidth",
                    world_size(), job->group()->backend().c_str(), result.median_allreduce_ms, mb,
                    mb / std::max(result.median_allreduce_ms, 1e-9));
      info(line);
    }
    if (result.last_checkpoint.empty() && writer()) result.last_checkpoint = run_dir + "/last.pt";
    return result;
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
  m.options = std::move(options);
  m.join_job();
  const auto meta = DatasetMeta::load(config.data.dir);
  m.tokenizer = meta.load_tokenizer();
  m.config.model.vocab_size = m.tokenizer->vocab_size();
  m.config.validate();
  check_training_fits_in_memory(m.config);
  m.setup_common(meta);  // checks the token files: a fresh run that cannot start leaves no trace
  m.claim_directory(config.train.out_dir);
  for (const char* name : {"last.pt", "best.pt"})
    if (fs::exists(fs::path(config.train.out_dir) / name))
      throw RunDirectoryInUse(config.train.out_dir, name);
  m.run_id = new_run_id();
  torch::manual_seed(static_cast<uint64_t>(config.runtime.seed));
  m.model = TransformerLM(m.config.model);
  if (!config.train.init_from.empty()) m.start_from(config.train.init_from);
  m.model->to(m.device);
  m.job->start_from_rank0(*m.model, static_cast<uint64_t>(config.runtime.seed));
  m.build_optimizer();
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& run_dir,
                                         const std::vector<std::string>& overrides,
                                         TrainerOptions options) {
  const std::string path = run_dir + "/last.pt";
  if (!fs::exists(path)) throw CheckpointError(run_dir + ": no last.pt to resume from");
  auto impl = std::make_unique<Impl>();
  auto& m = *impl;
  m.options = std::move(options);
  m.claim_directory(run_dir);
  auto ckpt = Checkpoint::load(path);
  // A checkpoint copied in from another run would carry that run on here and overwrite this
  // one's files: refused before anything changes. (Runs from before ids took one: "".)
  const std::string recorded = m.directory ? m.directory->recorded_run_id() : "";
  if (!recorded.empty() && ckpt.state.run_id != recorded)
    throw CheckpointError(path + " belongs to another run (" +
                          (ckpt.state.run_id.empty() ? "no run id" : "run " + ckpt.state.run_id) +
                          ") than the one in " + run_dir + " (run " + recorded +
                          "); resume that run from its own directory; nothing here was changed");
  m.run_id = !ckpt.state.run_id.empty() ? ckpt.state.run_id
             : !recorded.empty()        ? recorded
                                        : new_run_id();
  m.config = ckpt.config;
  for (const auto& o : overrides) {
    // The stored weights, tokenizer and split were made from these sections; a changed key would
    // be recorded in config.yaml but not take effect.
    for (const char* fixed : {"model.", "tokenizer.", "data."})
      if (o.rfind(fixed, 0) == 0)
        throw ConfigError::in_override(o, std::string(fixed).substr(0, std::strlen(fixed) - 1) +
                                              " keys cannot change when resuming");
    m.config.apply_override(o);
  }
  m.config.train.out_dir = run_dir;
  m.config.validate();
  check_training_fits_in_memory(m.config);
  m.join_job();
  m.tokenizer = std::move(ckpt.tokenizer);
  m.setup_common(DatasetMeta::load(m.config.data.dir));
  m.model = ckpt.model;
  m.model->to(m.device);
  m.build_optimizer();
  ckpt.load_optimizer(*m.optimizer);
  move_optimizer_state(*m.optimizer, m.device);
  m.state = ckpt.state;
  m.resumed_from = ckpt.state.step;
  m.sampler->set_state(ckpt.state.sampler_state);
  if (ckpt.state.world_size != m.world_size())
    throw CheckpointError(path + " was written by a run of " +
                          std::to_string(ckpt.state.world_size) + " rank(s); resume it with " +
                          std::to_string(ckpt.state.world_size) + " (this job has " +
                          std::to_string(m.world_size()) +
                          "): each rank's batches and dropout continue from where they were");
  if (m.distributed() && ckpt.state.rank_rng_states.defined())
    set_cpu_rng_state(ckpt.state.rank_rng_states[m.rank()].clone());
  else if (ckpt.state.torch_rng_state.defined())
    set_cpu_rng_state(ckpt.state.torch_rng_state);
  m.info("resuming " + run_dir + " from step " + std::to_string(m.state.step));
  return std::unique_ptr<Trainer>(new Trainer(std::move(impl)));
}

TrainResult Trainer::run() {
  auto& m = *impl_;
  const auto run_start = Clock::now();
  const LrSchedule schedule = m.schedule();
  const int64_t max_steps = m.config.train.max_steps;
  if (m.state.step >= max_steps) {
    m.info("run " + m.run_dir + " is at step " + std::to_string(m.state.step) +
           " already (train.max_steps " + std::to_string(max_steps) + "): nothing to do");
    return m.finish(run_start);
  }
  m.log_start();
  m.model->train();
  while (m.state.step < max_steps) {
    const auto rec = m.train_one_step(schedule);
    m.log_progress(rec);
    if (rec.step % m.config.eval.every == 0 || rec.step == max_steps) m.evaluate(rec.step);
    const bool stop = m.job->any_rank_stops(m.options.stop && m.options.stop->load());
    const int64_t every = m.config.checkpoint.every;
    if (stop || rec.step == max_steps || (every > 0 && rec.step % every == 0))
      m.save_checkpoints(stop);
    m.save_due();  // a new best between checkpoints
    if (stop) {
      m.result.interrupted = true;
      m.info("stopped at step " + std::to_string(rec.step) + "; checkpoint " +
             m.result.last_checkpoint);
      break;
    }
  }
  return m.finish(run_start);
}

}  // namespace qkv
