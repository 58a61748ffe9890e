// Hostile input and hostile events: corrupt checkpoints, failed resumes, refused overrides,
// altered values, unhelpful errors, litter after a crash, lost metrics, two runs in one
// directory, token files that do not match their meta.json, and kill -9 at random moments.
// Each failure is checked through the qkv binary where a user meets it: the exit code, the one
// line it prints, and that no file of the run directory changed.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "qkv/data/data_preparer.h"
#include "qkv/io/file_bytes.h"
#include "qkv/train/checkpoint.h"
#include "qkv/train/optimizer_setup.h"
#include "qkv/train/trainer.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using qkv::testing::prepared_tiny;
using qkv::testing::TempDir;

// Every file below `dir` with its bytes: two snapshots are equal when nothing changed.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[e.path().string()] = qkv::read_file_bytes(e.path().string());
  return files;
}

struct Outcome {
  int exit_code = -1;
  std::string err;  // stderr
  // Lines other than the progress log (commands log their set-up at info level first).
  int lines() const {
    std::istringstream in(err);
    int n = 0;
    for (std::string line; std::getline(in, line);) n += line.find("] info ") == std::string::npos;
    return n;
  }
};

// qkv ARGS with stdout discarded and stderr captured; `prefix` runs before it in the shell.
Outcome qkv_cli(const std::string& args, const std::string& prefix = "") {
  const std::string err_file = fs::temp_directory_path() / ("qkv_err_" + std::to_string(getpid()));
  const std::string cmd =
      prefix + std::string(QKV_BINARY) + " " + args + " > /dev/null 2> " + err_file;
  Outcome o;
  const int status = std::system(("bash -c '" + cmd + "'").c_str());
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.err = qkv::read_file_bytes(err_file);
  fs::remove(err_file);
  return o;
}

// The tiny config's overrides for a corpus and directories under `dir`.
std::string tiny_args(const TempDir& dir) {
  return std::string(QKV_SOURCE_DIR) +
         "/configs/tiny.yaml --set data.files=" + (dir / "corpus.txt") +
         " --set data.dir=" + (dir / "data") + " --set train.out_dir=" + (dir / "run");
}

// A finished tiny run of `steps` steps in dir/run.
void trained_run(const TempDir& dir, int steps) {
  auto config = prepared_tiny(dir, {"train.max_steps=" + std::to_string(steps)});
  qkv::Trainer(config).run();
}

#define EXPECT_ONE_LINE(outcome, code, text)                                 \
  do {                                                                       \
    EXPECT_EQ((outcome).exit_code, code) << (outcome).err;                   \
    EXPECT_EQ((outcome).lines(), 1) << (outcome).err;                        \
    EXPECT_NE((outcome).err.find(text), std::string::npos) << (outcome).err; \
  } while (0)

// --- 1. corrupt checkpoints ----------------------------------------------------------------------

TEST(Reliability, AnyFlippedByteOrNonFiniteWeightIsRefusedAtLoad) {
  TempDir dir("rel_corrupt");
  trained_run(dir, 3);
  const std::string good = qkv::read_file_bytes(dir / "run/last.pt");
  std::mt19937 rng(5);
  // 64 single-byte flips anywhere in the file, each refused with the file named.
  for (int i = 0; i < 64; ++i) {
    std::string bad = good;
    const size_t at = std::uniform_int_distribution<size_t>(0, good.size() - 1)(rng);
    bad[at] = static_cast<char>(bad[at] ^ (1 << (i % 8)));
    qkv::testing::write_file(dir / "bad.pt", bad);
    try {
      qkv::Checkpoint::load(dir / "bad.pt");
      ADD_FAILURE() << "a flip at byte " << at << " of " << good.size() << " loaded";
    } catch (const qkv::CheckpointError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(dir / "bad.pt", 0), 0u) << e.what();
    }
  }
  // A checkpoint written before checksums (the archive alone) still loads.
  qkv::testing::write_file(dir / "old.pt", good.substr(0, good.size() - 77));
  EXPECT_NO_THROW(qkv::Checkpoint::load(dir / "old.pt"));
  // Through the binary: one line naming the file.
  std::string bad = good;
  bad[good.size() / 2] ^= 0x40;
  qkv::testing::write_file(dir / "bad.pt", bad);
  const auto before = snapshot(dir / "run");
  EXPECT_ONE_LINE(qkv_cli("eval " + (dir / "bad.pt") + " --data " + (dir / "corpus.txt")), 1,
                  dir / "bad.pt" + ": corrupt: its contents do not match the SHA-256");
  // Resuming from a corrupt last.pt: refused, and the run directory stays as it was.
  fs::copy_file(dir / "bad.pt", dir / "run/last.pt", fs::copy_options::overwrite_existing);
  const auto corrupt_run = snapshot(dir / "run");
  EXPECT_ONE_LINE(qkv_cli("train --resume " + (dir / "run")), 1,
                  dir / "run/last.pt: corrupt: its contents do not match the SHA-256");
  EXPECT_EQ(snapshot(dir / "run"), corrupt_run);
  qkv::testing::write_file(dir / "run/last.pt", good);

  // Weights that are not numbers, written with a valid checksum, are refused too.
  auto ckpt = qkv::Checkpoint::load(dir / "run/last.pt");
  {
    torch::NoGradGuard no_grad;
    ckpt.model->blocks[1]->as<qkv::TransformerBlockImpl>()->attn->w_q->weight[0][0] = NAN;
  }
  qkv::write_checkpoint(dir / "nan.pt", ckpt.model, nullptr, ckpt.config, *ckpt.tokenizer, {});
  EXPECT_ONE_LINE(qkv_cli("eval " + (dir / "nan.pt") + " --data " + (dir / "corpus.txt")), 1,
                  dir / "nan.pt" + ": parameter blocks.1.attn.w_q.weight holds NaN or infinite");
  EXPECT_EQ(snapshot(dir / "run"), before);
}

// --- 2. a failed resume changes nothing -------------------------------------------------------

TEST(Reliability, AFailedResumeLeavesTheRunDirectoryAsItWas) {
  TempDir dir("rel_failed_resume");
  trained_run(dir, 10);
  const auto before = snapshot(dir / "run");
  auto r = qkv_cli("train --resume " + (dir / "run") + " --set train.batch_size=1000000000000");
  EXPECT_ONE_LINE(r, 1, "train.batch_size 1000000000000 x model.block_size 16: a training step");
  EXPECT_EQ(snapshot(dir / "run"), before);
  // A fresh run of that size is refused before its directory exists.
  auto fresh = qkv_cli("train " + tiny_args(dir) + " --set train.out_dir=" + (dir / "huge") +
                       " --set train.batch_size=1000000000000");
  EXPECT_ONE_LINE(fresh, 1, "train.batch_size 1000000000000");
  EXPECT_FALSE(fs::exists(dir / "huge"));
  // And the benchmark, which allocates the same step.
  EXPECT_ONE_LINE(qkv_cli("bench " + tiny_args(dir) + " --set train.batch_size=1000000000000"), 1,
                  "train.batch_size 1000000000000 x model.block_size 16");
}

// --- 3. overrides that cannot apply on resume ---------------------------------------------------

TEST(Reliability, ResumeRefusesWhatCannotApplyAndStopsWhereTheRunIs) {
  TempDir dir("rel_resume_keys");
  trained_run(dir, 20);
  const auto before = snapshot(dir / "run");
  for (const std::string& set : {"tokenizer.kind=sentencepiece", "data.val_fraction=0.5",
                                 "model.n_layer=3", "data.files=other.txt"}) {
    const std::string section = set.substr(0, set.find('.'));
    EXPECT_ONE_LINE(qkv_cli("train --resume " + (dir / "run") + " --set " + set), 1,
                    "--set " + set + ": " + section + " keys cannot change when resuming");
  }
  auto done = qkv_cli("train --resume " + (dir / "run") + " --set train.max_steps=10");
  EXPECT_EQ(done.exit_code, 0) << done.err;
  EXPECT_NE(done.err.find("is at step 20 already (train.max_steps 10): nothing to do"),
            std::string::npos)
      << done.err;
  EXPECT_EQ(snapshot(dir / "run"), before);
}

// --- 4. values that used to be altered silently
// ---------------------------------------------------

TEST(Reliability, OutOfRangeValuesAreRefusedNotAltered) {
  TempDir dir("rel_values");
  trained_run(dir, 2);
  const std::string run = dir / "run";
  const auto before = snapshot(run);
  for (const std::string& seed : {"-1", "18446744073709551616", "1e3"})
    EXPECT_ONE_LINE(qkv_cli("generate " + run + " --seed " + seed), 2,
                    "--seed: expected a whole number from 0 to 18446744073709551615, got " + seed);
  EXPECT_ONE_LINE(qkv_cli("report " + run + " --seed -1"), 2, "--seed: expected a whole number");
  for (const std::string& n : {"0", "9223372036854775808", "99999999999999999999", "1e3", "-5"})
    EXPECT_ONE_LINE(qkv_cli("generate " + run + " --max-new-tokens " + n), 2,
                    "--max-new-tokens: expected a whole number from 1 to 1000000000, got " + n);
  for (const std::string& threads : {"-1", "100000"})
    EXPECT_ONE_LINE(qkv_cli("generate " + run + " --threads " + threads), 2,
                    "--threads: Value " + threads + " not in range 0 to 1024");
  // A key given twice in one YAML file: YAML forbids it, and the second used to win silently.
  qkv::testing::write_file(
      dir / "twice.yaml",
      "model:\n  n_layer: 2\n  n_layer: 3\ndata:\n  files: [x.txt]\n  dir: d\n");
  EXPECT_ONE_LINE(qkv_cli("train " + (dir / "twice.yaml")), 1,
                  dir / "twice.yaml" + ":3: model.n_layer is given twice (first at line 2)");
  EXPECT_EQ(snapshot(run), before);
}

// --- 5. errors that name what is wrong
// ------------------------------------------------------------

TEST(Reliability, ErrorsNameTheFileKeyOrValue) {
  TempDir dir("rel_errors");
  trained_run(dir, 2);
  // A command that does not exist.
  EXPECT_ONE_LINE(qkv_cli("trian"), 2, "unknown command 'trian' (did you mean 'train'?)");
  // Empty and non-UTF-8 corpora.
  qkv::testing::write_file(dir / "empty.txt", "");
  qkv::testing::write_file(dir / "latin1.txt", "caf\xe9\n");
  EXPECT_ONE_LINE(qkv_cli("prepare " + tiny_args(dir) + " --set data.files=" + (dir / "empty.txt") +
                          " --set data.dir=" + (dir / "d1")),
                  1, "data.files: " + (dir / "empty.txt") + ": no text to tokenize (empty)");
  EXPECT_ONE_LINE(qkv_cli("prepare " + tiny_args(dir) + " --set data.files=" +
                          (dir / "latin1.txt") + " --set data.dir=" + (dir / "d2")),
                  1, dir / "latin1.txt" + ": expected UTF-8 text: malformed UTF-8 at byte 3");
  // One distinct character: nothing to predict (it trained to loss 0.0000 without a word).
  qkv::testing::write_file(dir / "one_char.txt", std::string(5000, 'a'));
  EXPECT_ONE_LINE(qkv_cli("prepare " + tiny_args(dir) + " --set data.files=" +
                          (dir / "one_char.txt") + " --set data.dir=" + (dir / "d3")),
                  1,
                  "data.files: " + (dir / "one_char.txt") +
                      ": a vocabulary of one token; the text needs at least 2 different "
                      "characters to have anything to predict");
  // A report of a run with no steps in its metrics (it wrote a report of nothing).
  fs::create_directories(dir / "no_steps");
  fs::copy_file(dir / "run/last.pt", dir / "no_steps/last.pt");
  qkv::testing::write_file(dir / "no_steps/metrics.jsonl", "");
  EXPECT_ONE_LINE(qkv_cli("report " + (dir / "no_steps")), 1,
                  "report: " + (dir / "no_steps/metrics.jsonl") +
                      " holds no training steps: there is nothing to report");
  EXPECT_FALSE(fs::exists(dir / "no_steps/report.html"));
  // Library text after a clear message: a zip reader's reason, a filesystem error's layout.
  qkv::testing::write_file(dir / "cut.pt",
                           qkv::read_file_bytes(dir / "run/last.pt").substr(0, 900));
  const auto cut = qkv_cli("generate " + (dir / "cut.pt"));
  EXPECT_ONE_LINE(cut, 1, (dir / "cut.pt") + ": not a readable checkpoint (truncated or corrupt)");
  EXPECT_EQ(cut.err.find("PytorchStreamReader"), std::string::npos) << cut.err;
  qkv::testing::write_file(dir / "a_file", "x");
  const auto out =
      qkv_cli("attention " + (dir / "run") + " --text abc --out " + (dir / "a_file/maps"));
  EXPECT_ONE_LINE(out, 1,
                  "cannot create directories " + (dir / "a_file/maps") + ": Not a directory");
  EXPECT_EQ(out.err.find("filesystem error"), std::string::npos) << out.err;
  const auto exported =
      qkv_cli("export " + (dir / "run") + " --format safetensors --out " + (dir / "a_file/model"));
  EXPECT_ONE_LINE(exported, 1,
                  (dir / "a_file/model") + ": " + (dir / "a_file") + " is a file, not a directory");
  EXPECT_EQ(exported.err.find("filesystem error"), std::string::npos) << exported.err;
  // A token file whose ids exceed the vocabulary (its meta.json updated to match it).
  const auto meta = qkv::DatasetMeta::load(dir / "data");
  std::string train = qkv::read_file_bytes(meta.train_path());
  train[6] = static_cast<char>(200);  // token 3, a uint16: id 200 + 256 * its high byte
  qkv::testing::write_file(meta.train_path(), train);
  auto j = nlohmann::json::parse(qkv::read_file_bytes(dir / "data/meta.json"));
  j["train_identity"] = qkv::TokenFile(meta.train_path(), meta.dtype).identity();
  qkv::testing::write_file(dir / "data/meta.json", j.dump());
  EXPECT_ONE_LINE(
      qkv_cli("train " + tiny_args(dir) + " --no-prepare --set train.out_dir=" + (dir / "run2")), 1,
      meta.train_path() + ": token id ");
  EXPECT_FALSE(fs::exists(dir / "run2"));  // a run that cannot start leaves no directory
  // A NaN on a fresh run: no checkpoint to speak of.
  TempDir fresh("rel_errors_nan");
  auto config = prepared_tiny(fresh, {"optim.lr=1e30", "optim.warmup_steps=0"});
  try {
    qkv::Trainer(config).run();
    FAIL() << "training with lr 1e30 did not diverge";
  } catch (const qkv::TrainingDiverged& e) {
    EXPECT_NE(std::string(e.what()).find("no checkpoint had been written"), std::string::npos)
        << e.what();
  }
}

// --- 6. litter and duplicates after a crash ---------------------------------------------------

TEST(Reliability, StaleTemporariesGoAndResumedMetricsHoldEachStepOnce) {
  TempDir dir("rel_litter");
  auto config = prepared_tiny(dir, {"train.max_steps=10", "checkpoint.every=5"});
  qkv::Trainer(config).run();
  // A writer killed mid-write (a pid that is gone), and one still alive (this test's parent).
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  const std::string dead = dir / ("run/last.pt.tmp." + std::to_string(child));
  const std::string live = dir / ("run/report.html.tmp." + std::to_string(getppid()));
  qkv::testing::write_file(dead, "half a checkpoint");
  qkv::testing::write_file(live, "a report being written");
  // The run was killed after step 13 with last.pt at step 10: steps 11-13 are logged already.
  {
    std::ofstream out(dir / "run/metrics.jsonl", std::ios::app);
    for (int s = 11; s <= 13; ++s)
      out << nlohmann::json({{"type", "step"}, {"step", s}, {"loss", 9.0}}).dump() << "\n";
  }
  auto trainer = qkv::Trainer::resume(dir / "run", {"train.max_steps=15"});
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live));
  trainer->run();
  std::map<int64_t, int> count;
  std::ifstream in(dir / "run/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "step") ++count[j["step"].get<int64_t>()];
  }
  ASSERT_EQ(count.size(), 15u);
  for (const auto& [step, n] : count) EXPECT_EQ(n, 1) << "step " << step;
}

// --- 7. a metrics write that fails stops the run
// --------------------------------------------------

TEST(Reliability, AFullDiskForMetricsStopsTheRunAndKeepsTheCheckpoint) {
  TempDir dir("rel_full_disk");
  trained_run(dir, 5);
  const std::string last = qkv::read_file_bytes(dir / "run/last.pt");
  // A 16 KiB limit on every file this process writes: metrics.jsonl reaches it first.
  auto r = qkv_cli("train --resume " + (dir / "run") +
                       " --set train.max_steps=100000 --set checkpoint.every=0"
                       " --set eval.every=100000 --set train.log_every=100000",
                   "ulimit -f 16; ");
  EXPECT_ONE_LINE(r, 1, "cannot write " + (dir / "run/metrics.jsonl") + ": File too large");
  EXPECT_EQ(qkv::read_file_bytes(dir / "run/last.pt"), last);
  EXPECT_NO_THROW(qkv::Checkpoint::load(dir / "run/last.pt"));

  // The same for train.log, when it is the file that reaches the limit first.
  {
    std::ofstream log(dir / "run/train.log", std::ios::app);
    log << std::string(14 * 1024, '#') << "\n";
  }
  auto l = qkv_cli("train --resume " + (dir / "run") +
                       " --set train.max_steps=100000 --set checkpoint.every=0"
                       " --set eval.every=100000 --set train.log_every=1",
                   "ulimit -f 16; ");
  EXPECT_ONE_LINE(l, 1, "cannot write the training log");
  EXPECT_EQ(qkv::read_file_bytes(dir / "run/last.pt"), last);
}

// --- 8. two runs, one directory -----------------------------------------------------------------

TEST(Reliability, ASecondRunInTheSameDirectoryIsRefusedNamingTheHolder) {
  TempDir dir("rel_two_runs");
  trained_run(dir, 2);
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string args = "train --resume " + (dir / "run") + " --set train.max_steps=1000000";
    execl("/bin/sh", "sh", "-c",
          (std::string("exec ") + QKV_BINARY + " " + args + " > /dev/null 2>&1").c_str(), nullptr);
    _exit(127);
  }
  // Wait until it trains (its first step has written config.yaml anew).
  const auto start = fs::last_write_time(dir / "run/config.yaml");
  for (int i = 0; i < 6000 && fs::last_write_time(dir / "run/config.yaml") == start; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const std::string holder = "is in use by process " + std::to_string(pid);
  EXPECT_ONE_LINE(qkv_cli("train --resume " + (dir / "run")), 1, holder);
  EXPECT_ONE_LINE(qkv_cli("train " + tiny_args(dir) + " --no-prepare"), 1, holder);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // Once it is gone the directory is free again (no stale lock).
  EXPECT_NO_THROW(qkv::Trainer::resume(dir / "run", {}));
}

// --- 8b. a checkpoint from another run
// ------------------------------------------------------------

TEST(Reliability, ALastCheckpointFromAnotherRunIsRefusedAndNothingIsOverwritten) {
  TempDir dir("rel_foreign_run"), elsewhere("rel_foreign_other");
  trained_run(dir, 6);
  // Another run: another vocabulary and shape.
  std::string corpus;
  for (int i = 0; i < 300; ++i) corpus += "xyz " + std::to_string(i * 7919) + " QRS\n";
  qkv::testing::write_file(elsewhere / "corpus.txt", corpus);
  auto other = qkv::testing::tiny_config(elsewhere, {"model.n_layer=1", "train.max_steps=4"});
  qkv::prepare_data(other);
  qkv::Trainer(other).run();
  const std::string own = qkv::read_file_bytes(dir / "run/last.pt");
  const std::string id = qkv::read_file_bytes(dir / "run/run_id");
  EXPECT_EQ(id.size(), 17u);  // 16 hexadecimal digits and a newline
  EXPECT_EQ(qkv::Checkpoint::load(dir / "run/best.pt").state.run_id + "\n", id);

  fs::copy_file(elsewhere / "run/last.pt", dir / "run/last.pt",
                fs::copy_options::overwrite_existing);
  const auto before = snapshot(dir / "run");
  EXPECT_ONE_LINE(qkv_cli("train --resume " + (dir / "run") + " --set train.max_steps=12"), 1,
                  dir / "run/last.pt belongs to another run");
  EXPECT_EQ(snapshot(dir / "run"), before);  // config.yaml, best.pt, metrics.jsonl untouched

  // Its own last.pt resumes, and the checkpoints it writes name the same run.
  qkv::testing::write_file(dir / "run/last.pt", own);
  const auto resumed = qkv_cli("train --resume " + (dir / "run") + " --set train.max_steps=8");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(qkv::read_file_bytes(dir / "run/run_id"), id);
  const auto last = qkv::Checkpoint::load(dir / "run/last.pt");
  EXPECT_EQ(last.state.step, 8);
  EXPECT_EQ(last.state.run_id + "\n", id);
}

// --- 9. a token file that does not match its meta.json -------------------------------------------

TEST(Reliability, ATokenFileThatIsNotTheOnePreparedIsRefused) {
  TempDir dir("rel_token_file");
  trained_run(dir, 2);
  const auto meta = qkv::DatasetMeta::load(dir / "data");
  const std::string val = qkv::read_file_bytes(meta.val_path());
  qkv::testing::write_file(meta.val_path(), val.substr(0, 2 * 200));  // a 200-token slice
  const auto before = snapshot(dir / "run");
  EXPECT_ONE_LINE(qkv_cli("eval " + (dir / "run") + " --data " + meta.val_path()), 1,
                  meta.val_path() + " holds 200 tokens but " + (dir / "data") + "/meta.json says " +
                      std::to_string(meta.val_tokens));
  EXPECT_ONE_LINE(qkv_cli("train --resume " + (dir / "run") + " --set train.max_steps=4"), 1,
                  meta.val_path() + " holds 200 tokens");
  EXPECT_EQ(snapshot(dir / "run"), before);
  // Same length, other tokens: the identity tells them apart.
  std::string swapped = val;
  std::reverse(swapped.begin(), swapped.end() - 1);
  swapped.resize(val.size());
  qkv::testing::write_file(meta.val_path(), swapped);
  EXPECT_ONE_LINE(qkv_cli("eval " + (dir / "run") + " --data " + meta.val_path()), 1,
                  meta.val_path() + " does not match the identity");
}

// --- kill -9 at random moments ------------------------------------------------------------------

TEST(Reliability, KillNineAtRandomMomentsNeverCostsALoadableCheckpoint) {
  TempDir dir("rel_kill9");
  prepared_tiny(dir);
  const std::string args = tiny_args(dir) +
                           " --no-prepare --set train.max_steps=1000000 --set checkpoint.every=1"
                           " --set eval.every=7";
  std::mt19937 rng(11);
  int kills = 0, temporaries_seen = 0;
  // Each process is killed at a random moment after it has begun to train (it has rewritten
  // last.pt once): a start-up slowed down (by a sanitizer, say) must not turn the test into one
  // about start-up.
  auto last_written = [&] {
    std::error_code ec;
    const auto t = fs::last_write_time(dir / "run/last.pt", ec);
    return ec ? fs::file_time_type::min() : t;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  while (kills < 20 && std::chrono::steady_clock::now() < deadline) {
    const bool resume = fs::exists(dir / "run/last.pt");
    const std::string cmd = std::string(QKV_BINARY) + " train " +
                            (resume ? "--resume " + (dir / "run") : args) + " > /dev/null 2>&1";
    const auto before = last_written();
    const pid_t pid = fork();
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 3000 && last_written() == before; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 400)(rng)));
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    ++kills;
    if (!fs::exists(dir / "run")) continue;  // killed while starting up
    for (const auto& e : fs::directory_iterator(dir / "run")) {
      const std::string name = e.path().filename().string();
      if (name.find(".tmp.") != std::string::npos) {
        ++temporaries_seen;
        continue;
      }
      if (e.path().extension() == ".pt")
        EXPECT_NO_THROW(qkv::Checkpoint::load(e.path().string()))
            << name << " after kill " << kills;
    }
  }
  EXPECT_GE(kills, 20);
  ASSERT_TRUE(fs::exists(dir / "run/last.pt"));
  // The next start resumes and leaves no temporary file behind.
  auto trainer = qkv::Trainer::resume(dir / "run", {});
  for (const auto& e : fs::directory_iterator(dir / "run"))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  const int64_t at = qkv::Checkpoint::load(dir / "run/last.pt").state.step;
  trainer.reset();
  auto more = qkv::Trainer::resume(dir / "run", {"train.max_steps=" + std::to_string(at + 2)});
  EXPECT_EQ(more->run().final_step, at + 2);
  RecordProperty("temporaries_left_by_kills", temporaries_seen);
}

}  // namespace
