// Training: the loss falls, runs resume bit-for-bit, checkpoints survive truncation and SIGTERM.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "qkv/data/data_preparer.h"
#include "qkv/train/checkpoint.h"
#include "qkv/train/lr_schedule.h"
#include "qkv/train/optimizer_setup.h"
#include "qkv/train/trainer.h"
#include "test_support.h"

namespace {

using qkv::testing::prepared_tiny;
using qkv::testing::TempDir;

TEST(LrSchedule, WarmsUpLinearlyThenFollowsTheCosineToMinLr) {
  qkv::LrSchedule s{1e-3, 1e-4, 100, 2000};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-3 * 1 / 101);
  EXPECT_DOUBLE_EQ(s.at(49), 1e-3 * 50 / 101);
  EXPECT_DOUBLE_EQ(s.at(100), 1e-3);                  // cos(0) = 1: the peak
  EXPECT_NEAR(s.at(1050), 1e-4 + 0.5 * 9e-4, 1e-15);  // halfway: cos(pi/2) = 0
  EXPECT_NEAR(s.at(2000), 1e-4, 1e-15);
  EXPECT_DOUBLE_EQ(s.at(5000), 1e-4);
}

TEST(Trainer, TinyModelLossFalls) {
  TempDir dir("train_falls");
  auto config = prepared_tiny(dir, {"train.max_steps=150", "model.dropout=0", "optim.lr=1e-2",
                                    "optim.min_lr=1e-3", "eval.every=50"});
  auto result = qkv::Trainer(config).run();
  ASSERT_EQ(result.steps.size(), 150u);
  ASSERT_GE(result.evals.size(), 2u);
  const double first = result.steps.front().loss;
  // Uniform guessing over the vocabulary scores ln(V) at the start; training must beat it well.
  const auto vocab = qkv::DatasetMeta::load(config.data.dir).vocab_size;
  EXPECT_NEAR(first, std::log(double(vocab)), 0.5);
  EXPECT_LT(result.evals.back().val_loss, first - 1.0);
  EXPECT_LT(result.steps.back().loss, first - 1.0);
  // Logs and metrics land in the run directory, one JSON line per step plus evaluations.
  EXPECT_TRUE(std::filesystem::exists(dir / "run/train.log"));
  std::ifstream metrics(dir / "run/metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) ++lines;
  EXPECT_EQ(lines, 150 + static_cast<int>(result.evals.size()));
  EXPECT_TRUE(std::filesystem::exists(dir / "run/best.pt"));
  EXPECT_TRUE(std::filesystem::exists(dir / "run/config.yaml"));
}

TEST(Trainer, ResumedRunMatchesAStraightRunBitForBit) {
  // Dropout is on in the tiny config, so the torch RNG must resume too, not just the batches.
  const std::vector<std::string> common = {"optim.decay_steps=30", "checkpoint.every=0",
                                           "runtime.threads=1"};
  TempDir straight_dir("resume_straight"), split_dir("resume_split");
  auto straight_cfg = prepared_tiny(straight_dir, common);
  straight_cfg.train.max_steps = 30;
  auto straight = qkv::Trainer(straight_cfg).run();

  auto split_cfg = prepared_tiny(split_dir, common);
  split_cfg.train.max_steps = 15;
  auto first_half = qkv::Trainer(split_cfg).run();
  ASSERT_EQ(first_half.final_step, 15);
  auto second_half = qkv::Trainer::resume(split_dir / "run", {"train.max_steps=30"})->run();
  ASSERT_EQ(second_half.final_step, 30);

  std::vector<double> resumed;
  for (auto& s : first_half.steps) resumed.push_back(s.loss);
  for (auto& s : second_half.steps) resumed.push_back(s.loss);
  ASSERT_EQ(resumed.size(), straight.steps.size());
  for (size_t i = 0; i < resumed.size(); ++i)
    EXPECT_EQ(resumed[i], straight.steps[i].loss) << "step " << i + 1;  // exact, not near
}

TEST(Trainer, RefusesToOverwriteAnExistingRun) {
  TempDir dir("train_overwrite");
  auto config = prepared_tiny(dir, {"train.max_steps=2"});
  qkv::Trainer(config).run();
  try {
    qkv::Trainer{config};
    FAIL() << "a run directory with a checkpoint was overwritten";
  } catch (const qkv::RunDirectoryInUse& e) {
    EXPECT_EQ(e.run_dir(), dir / "run");
    EXPECT_EQ(std::string(e.what()), "run directory " + (dir / "run") + " already holds last.pt");
  }
  // Nor does a resume take model keys: the stored weights fix the model.
  try {
    qkv::Trainer::resume(dir / "run", {"model.dropout=0.3"});
    FAIL() << "a model key changed on resume";
  } catch (const qkv::ConfigError& e) {
    EXPECT_EQ(e.override_assignment(), "model.dropout=0.3");
    EXPECT_EQ(e.detail(), "model keys cannot change when resuming");
  }
  EXPECT_NO_THROW(qkv::Trainer::resume(dir / "run", {"train.max_steps=3"}));
  // The command line names the command that continues the run.
  auto r =
      qkv::testing::run_command(std::string(QKV_BINARY) + " train " + QKV_SOURCE_DIR +
                                "/configs/tiny.yaml --no-prepare --set data.dir=" + (dir / "data") +
                                " --set train.out_dir=" + (dir / "run") + " 2>&1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("already holds last.pt: continue it with `qkv train --resume " +
                       (dir / "run") + "`"),
            std::string::npos)
      << r.out;
}

TEST(Checkpoint, HoldsEverythingToRebuildTheModelWithoutTheConfig) {
  TempDir dir("ckpt_contents");
  auto config = prepared_tiny(dir, {"train.max_steps=10"});
  qkv::Trainer(config).run();
  auto ckpt = qkv::Checkpoint::load(dir / "run");  // a run directory resolves to best.pt
  EXPECT_EQ(ckpt.path, dir / "run/best.pt");
  auto last = qkv::Checkpoint::load(dir / "run/last.pt");
  EXPECT_EQ(last.state.step, 10);
  EXPECT_EQ(last.config.model.n_layer, 2);
  EXPECT_EQ(last.config.model.vocab_size, last.tokenizer->vocab_size());
  EXPECT_EQ(last.qkv_version, QKV_VERSION);
  EXPECT_FALSE(last.state.sampler_state.empty());
  const std::string text = "The king loves the phone.\n";
  EXPECT_EQ(last.tokenizer->decode(last.tokenizer->encode(text)), text);
  auto logits = last.model(torch::tensor({{1, 2, 3}}, torch::kLong));
  EXPECT_EQ(logits.size(2), last.tokenizer->vocab_size());
}

TEST(Checkpoint, TruncatedFileIsRejectedWithAClearError) {
  TempDir dir("ckpt_truncated");
  auto config = prepared_tiny(dir, {"train.max_steps=3"});
  qkv::Trainer(config).run();
  const std::string path = dir / "run/last.pt";
  const auto size = std::filesystem::file_size(path);
  std::filesystem::copy_file(path, dir / "cut.pt");
  std::filesystem::resize_file(dir / "cut.pt", size / 2);
  try {
    qkv::Checkpoint::load(dir / "cut.pt");
    FAIL() << "truncated checkpoint loaded";
  } catch (const qkv::CheckpointError& e) {
    std::string what = e.what();
    EXPECT_EQ(what.rfind(dir / "cut.pt" + ": not a readable checkpoint", 0), 0u) << what;
  }
  qkv::testing::write_file(dir / "junk.pt", "hello");
  EXPECT_THROW(qkv::Checkpoint::load(dir / "junk.pt"), qkv::CheckpointError);
  EXPECT_THROW(qkv::Checkpoint::load(dir / "missing.pt"), qkv::CheckpointError);
  EXPECT_NO_THROW(qkv::Checkpoint::load(path));  // the original is untouched
}

TEST(CommandLine, SigtermFinishesTheStepWritesACheckpointAndExitsZero) {
  TempDir dir("sigterm");
  auto config = prepared_tiny(dir);
  const std::string run = dir / "run";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    dup2(devnull, STDERR_FILENO);
    execl(QKV_BINARY, QKV_BINARY, "train",
          (std::string(QKV_SOURCE_DIR) + "/configs/tiny.yaml").c_str(), "--set",
          ("data.files=" + (dir / "corpus.txt")).c_str(), "--set",
          ("data.dir=" + (dir / "data")).c_str(), "--set", ("train.out_dir=" + run).c_str(),
          "--set", "train.max_steps=1000000", "--set", "checkpoint.every=0", "--set",
          "eval.every=1000000", nullptr);
    _exit(127);
  }
  // Wait until training is under way (metrics appear), then ask it to stop.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream m(run + "/metrics.jsonl");
    int lines = 0;
    for (std::string l; std::getline(m, l);) ++lines;
    if (lines >= 5) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto ckpt = qkv::Checkpoint::load(run + "/last.pt");
  EXPECT_GE(ckpt.state.step, 5);
  EXPECT_LT(ckpt.state.step, 1000000);
  // And the run continues from it.
  auto resumed =
      qkv::Trainer::resume(run, {"train.max_steps=" + std::to_string(ckpt.state.step + 2)});
  EXPECT_EQ(resumed->run().final_step, ckpt.state.step + 2);
}

}  // namespace

namespace {

TEST(Trainer, NonFiniteLossStopsWithAClearErrorAndKeepsTheLastCheckpoint) {
  TempDir dir("nan");
  auto config = prepared_tiny(dir, {"train.max_steps=4"});
  qkv::Trainer(config).run();
  // Poison the stored run so the next step's loss cannot be a number: weights still finite
  // (non-finite ones are refused at load), but their products overflow.
  auto ckpt = qkv::Checkpoint::load(dir / "run/last.pt");
  {
    torch::NoGradGuard no_grad;
    ckpt.model->tok_emb->weight.fill_(3e38f);
  }
  auto optimizer = qkv::make_adamw(ckpt.model, ckpt.config);
  qkv::write_checkpoint(dir / "run/last.pt", ckpt.model, optimizer.get(), ckpt.config,
                        *ckpt.tokenizer, ckpt.state);
  const auto before = std::filesystem::last_write_time(dir / "run/last.pt");
  const auto size = std::filesystem::file_size(dir / "run/last.pt");
  auto trainer = qkv::Trainer::resume(dir / "run", {"train.max_steps=8"});
  try {
    trainer->run();
    FAIL() << "a NaN loss did not stop training";
  } catch (const qkv::TrainingDiverged& e) {
    EXPECT_EQ(std::string(e.what()).rfind("loss became nan at step 5", 0), 0u)
        << "[" << e.what() << "]";
  }
  EXPECT_EQ(std::filesystem::last_write_time(dir / "run/last.pt"), before);
  EXPECT_EQ(std::filesystem::file_size(dir / "run/last.pt"), size);
  EXPECT_NO_THROW(qkv::Checkpoint::load(dir / "run/last.pt"));
}

}  // namespace
