// Data-parallel training over c10d (Gloo on loopback, and across two network namespaces where
// the test runs as root): the reducer's arithmetic, N ranks x batch B against one rank x batch
// N*B, resume, the launchers, and what happens when a rank dies or cannot meet the others.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <future>
#include <thread>

#include "qkv/data/batch_sampler.h"
#include "qkv/distributed/gradient_reducer.h"
#include "qkv/distributed/local_launcher.h"
#include "qkv/distributed/process_group.h"
#include "qkv/io/file_bytes.h"
#include "qkv/report/run_metrics.h"
#include "qkv/train/checkpoint.h"
#include "qkv/train/optimizer_setup.h"
#include "qkv/train/training_step.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using qkv::testing::TempDir;

// CI installs Gloo's headers: there a build without them is a failure, elsewhere a skip.
#define REQUIRE_GLOO()                                                                      \
  do {                                                                                      \
    if (!qkv::gloo_available()) {                                                           \
      if (std::getenv("CI")) FAIL() << "built without Gloo under CI (libgloo-dev missing)"; \
      GTEST_SKIP() << "built without the Gloo headers (libgloo-dev)";                       \
    }                                                                                       \
  } while (0)

qkv::LaunchEnvironment loopback(int rank, int world, uint16_t port) {
  qkv::LaunchEnvironment env;
  env.rank = rank;
  env.local_rank = rank;
  env.world_size = world;
  env.master_addr = "127.0.0.1";
  env.master_port = port;
  return env;
}

// `body(rank, group)` on each of `world` threads, every thread a rank of one Gloo job.
template <class Body>
void run_ranks(int world, Body body) {
  const uint16_t port = qkv::free_local_port();
  std::vector<std::future<void>> ranks;
  for (int r = 0; r < world; ++r)
    ranks.push_back(std::async(std::launch::async, [&, r] {
      qkv::ProcessGroupOptions options;
      options.timeout = std::chrono::seconds(60);
      body(r, qkv::ProcessGroup::connect(loopback(r, world, port), options));
    }));
  for (auto& f : ranks) f.get();
}

// --- the reducer -------------------------------------------------------------------------------

// Parameters of odd sizes in buckets of 64 bytes (several per bucket, one larger than a bucket);
// rank r's gradient of parameter k is (r + 1) * (k + 1) * x_k, over two micro-batches for the
// accumulation path. Expected mean, by hand: 1.5 * (k + 1) * x_k * 2 micro-batches.
void check_reducer(bool overlap) {
  run_ranks(2, [&](int rank, std::shared_ptr<qkv::ProcessGroup> group) {
    std::vector<torch::Tensor> params, inputs;
    for (int64_t n : {3, 1, 7, 40, 5}) {
      params.push_back(torch::randn({n}).requires_grad_());
      inputs.push_back(torch::arange(1, n + 1, torch::kFloat32));
    }
    qkv::GradientReducerOptions options;
    options.bucket_bytes = 64;
    options.overlap = overlap;
    qkv::GradientReducer reducer(params, group, options);
    EXPECT_GE(reducer.bucket_count(), 3);
    EXPECT_EQ(reducer.bytes_per_step(), (3 + 1 + 7 + 40 + 5) * 4);
    for (int step = 0; step < 3; ++step) {  // buckets are reused: stale data must not leak
      for (int micro = 0; micro < 2; ++micro) {
        if (micro == 1) reducer.expect_final_backward();
        auto loss = torch::zeros({});
        for (size_t k = 0; k < params.size(); ++k)
          loss = loss + (params[k] * inputs[k]).sum() * double((rank + 1) * (k + 1));
        loss.backward();
      }
      reducer.average();
      for (size_t k = 0; k < params.size(); ++k) {
        const auto expected = inputs[k] * (1.5 * double(k + 1) * 2);
        EXPECT_TRUE(torch::allclose(params[k].grad(), expected, 1e-6, 0))
            << "step " << step << " param " << k << ": " << params[k].grad();
        params[k].mutable_grad() = torch::Tensor();
      }
    }
  });
}

// A rank whose peer died must fail its collective with a line, not die of SIGPIPE when Gloo
// writes to the dead peer's socket.
TEST(ProcessGroup, ConnectingIgnoresSigpipeUnlessTheProgramHandlesIt) {
  REQUIRE_GLOO();
  std::signal(SIGPIPE, SIG_DFL);
  run_ranks(2, [](int, std::shared_ptr<qkv::ProcessGroup>) {});
  struct sigaction now {};
  ASSERT_EQ(sigaction(SIGPIPE, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, SIG_IGN);
  // A handler of the program's own stays.
  auto handler = [](int) {};
  std::signal(SIGPIPE, +handler);
  run_ranks(2, [](int, std::shared_ptr<qkv::ProcessGroup>) {});
  ASSERT_EQ(sigaction(SIGPIPE, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, +handler);
  std::signal(SIGPIPE, SIG_IGN);
}

TEST(GradientReducer, AveragesBucketsAfterBackward) {
  REQUIRE_GLOO();
  check_reducer(/*overlap=*/false);
}

TEST(GradientReducer, AveragesBucketsStartedDuringBackward) {
  REQUIRE_GLOO();
  check_reducer(/*overlap=*/true);
}

// --- N ranks x batch B == 1 rank x batch N*B
// ------------------------------------------------------

struct Trajectory {
  std::vector<double> losses;
  qkv::TransformerLM model{nullptr};
};

// 20 TrainingSteps of the tiny config (dropout 0) from the weights `init`, with `batch` windows
// per rank, as rank `rank` of `group` (or alone when it is null).
Trajectory train_steps(const qkv::Config& base, const qkv::TransformerLM& init, int64_t batch,
                       std::shared_ptr<qkv::ProcessGroup> group, bool overlap) {
  auto config = base;
  config.train.batch_size = batch;
  config.runtime.overlap_allreduce = overlap;
  config.runtime.bucket_mb = 1;
  Trajectory t;
  t.model = qkv::TransformerLM(config.model);
  qkv::testing::copy_parameters(t.model, const_cast<qkv::TransformerLM&>(init));
  auto optimizer = qkv::make_adamw(t.model, config);
  qkv::TrainingStep step(t.model, *optimizer, config, group);
  const auto meta = qkv::DatasetMeta::load(config.data.dir);
  qkv::BatchSampler sampler(meta.open_checked("train"), batch, config.model.block_size,
                            config.runtime.seed, group ? group->rank() : 0,
                            group ? group->world_size() : 1);
  for (int i = 0; i < 20; ++i)
    t.losses.push_back(step.run([&] { return sampler.next(); }, 1e-3).loss);
  return t;
}

void check_two_ranks_equal_one(bool overlap) {
  TempDir dir(overlap ? "dp_equal_overlap" : "dp_equal");
  const auto config = qkv::testing::prepared_tiny(dir, {"model.dropout=0"});
  torch::manual_seed(3);
  auto config_model = config.model;
  config_model.vocab_size = qkv::DatasetMeta::load(config.data.dir).vocab_size;
  auto cfg = config;
  cfg.model = config_model;
  qkv::TransformerLM init(cfg.model);
  const auto alone = train_steps(cfg, init, 8, nullptr, false);
  std::vector<Trajectory> ranks(2);
  run_ranks(2, [&](int r, std::shared_ptr<qkv::ProcessGroup> group) {
    ranks[r] = train_steps(cfg, init, 4, group, overlap);
  });
  for (size_t i = 0; i < alone.losses.size(); ++i) {
    EXPECT_NEAR(ranks[0].losses[i], alone.losses[i], 1e-5 * std::abs(alone.losses[i]))
        << "step " << i + 1;
    EXPECT_EQ(ranks[0].losses[i], ranks[1].losses[i]) << "step " << i + 1;
  }
  // The ranks' weights are bit-identical, and match the single rank's up to summation order.
  auto p0 = ranks[0].model->parameters(), p1 = ranks[1].model->parameters();
  for (size_t k = 0; k < p0.size(); ++k) EXPECT_TRUE(torch::equal(p0[k], p1[k])) << "param " << k;
  auto single = alone.model;
  EXPECT_LT(qkv::testing::max_param_difference(ranks[0].model, single), 1e-4);
}

TEST(DataParallel, TwoRanksOfFourTrainAsOneRankOfEight) {
  REQUIRE_GLOO();
  check_two_ranks_equal_one(/*overlap=*/false);
}

TEST(DataParallel, TwoRanksOfFourTrainAsOneRankOfEightWithOverlap) {
  REQUIRE_GLOO();
  check_two_ranks_equal_one(/*overlap=*/true);
}

// --- the command line ---------------------------------------------------------------------------

struct Outcome {
  int exit_code = -1;
  std::string err;
  double seconds = 0;
  std::vector<std::string> problems() const {  // lines other than info
    std::vector<std::string> lines;
    std::istringstream in(err);
    for (std::string line; std::getline(in, line);)
      if (line.find(" info ") == std::string::npos && !line.empty()) lines.push_back(line);
    return lines;
  }
};

Outcome shell(const std::string& command) {
  const std::string err_file =
      fs::temp_directory_path() / ("qkv_dp_err_" + std::to_string(getpid()));
  const auto t0 = std::chrono::steady_clock::now();
  const int status = std::system(("bash -c '" + command + " 2> " + err_file + "'").c_str());
  Outcome o;
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.err = qkv::read_file_bytes(err_file);
  fs::remove(err_file);
  return o;
}

std::string qkv_bin() {
  return QKV_BINARY;
}

// The tiny config, 20 steps, dropout `dropout`, in dir/RUN with the data in dir/data.
std::string train_args(const TempDir& dir, const std::string& run, int batch, int steps = 20,
                       const std::string& dropout = "0") {
  return std::string(QKV_SOURCE_DIR) +
         "/configs/tiny.yaml --set data.files=" + (dir / "corpus.txt") +
         " --set data.dir=" + (dir / "data") + " --set train.out_dir=" + (dir / run) +
         " --set train.batch_size=" + std::to_string(batch) +
         " --set train.max_steps=" + std::to_string(steps) + " --set model.dropout=" + dropout +
         " --set runtime.timeout_s=30" +
         " --set optim.decay_steps=20";  // one schedule whatever max_steps
}

std::vector<double> step_losses(const std::string& run_dir) {
  std::vector<double> losses;
  for (const auto& s : qkv::RunMetrics::load(run_dir + "/metrics.jsonl").steps)
    losses.push_back(s.loss);
  return losses;
}

void expect_same_losses(const std::vector<double>& a, const std::vector<double>& b, double rel) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(a[i], b[i], rel * std::abs(b[i])) << "step " << i + 1;
}

// Two ranks launched as a scheduler would: each process gets its variables; `wrap_r` goes
// before rank r's command (a network namespace, say).
std::string env_launch(const std::string& args, const std::string& addr, uint16_t port,
                       const std::string& wrap0 = "", const std::string& wrap1 = "") {
  auto rank = [&](int r, const std::string& wrap) {
    return wrap + " env RANK=" + std::to_string(r) + " LOCAL_RANK=" + std::to_string(r) +
           " WORLD_SIZE=2 MASTER_ADDR=" + addr + " MASTER_PORT=" + std::to_string(port) + " " +
           qkv_bin() + " train " + args;
  };
  // Both must succeed; rank 1 runs in the background.
  return "(" + rank(1, wrap1) + " > /dev/null & r1=$!; " + rank(0, wrap0) +
         " > /dev/null; r0=$?; wait $r1; r1=$?; exit $(( r0 | r1 )))";
}

class DataParallelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!qkv::gloo_available()) {
      if (std::getenv("CI")) FAIL() << "built without Gloo under CI (libgloo-dev missing)";
      GTEST_SKIP() << "built without the Gloo headers (libgloo-dev)";
    }
    qkv::testing::write_file(dir_ / "corpus.txt", qkv::testing::sample_corpus(400));
  }
  // A shell command: `qkv train --nproc 2` on a run that would not end by itself, in the
  // background ($pid) with its output to `output`, then `then` once its first checkpoint exists.
  // In braces: the launcher's stderr is what the test reads.
  std::string once_training(const std::string& output, const std::string& then) const {
    const auto args = train_args(dir_, "run", 4, 100000) + " --set checkpoint.every=5 --nproc 2";
    return "{ " + qkv_bin() + " train " + args + " " + output + " & pid=$!; " +
           "for i in $(seq 600); do [ -e " + (dir_ / "run/last.pt") +
           " ] && break; sleep 0.1; done; " + then + " }";
  }
  TempDir dir_{"dp_cli"};
};

TEST_F(DataParallelCli, NprocAndEnvironmentLaunchesTrainAsOneRankOfTwiceTheBatch) {
  auto alone = shell(qkv_bin() + " train " + train_args(dir_, "alone", 8));
  ASSERT_EQ(alone.exit_code, 0) << alone.err;
  auto nproc = shell(qkv_bin() + " train " + train_args(dir_, "nproc", 4) + " --nproc 2");
  ASSERT_EQ(nproc.exit_code, 0) << nproc.err;
  expect_same_losses(step_losses(dir_ / "nproc"), step_losses(dir_ / "alone"), 1e-5);
  auto env = shell(env_launch(train_args(dir_, "env", 4), "127.0.0.1", qkv::free_local_port()));
  ASSERT_EQ(env.exit_code, 0) << env.err;
  expect_same_losses(step_losses(dir_ / "env"), step_losses(dir_ / "nproc"), 0);
  // Rank 0 alone wrote the run directory, and the checkpoint records both ranks.
  const auto ckpt = qkv::Checkpoint::load(dir_ / "env/last.pt");
  EXPECT_EQ(ckpt.state.world_size, 2);
  EXPECT_EQ(ckpt.state.rank_rng_states.size(0), 2);
}

TEST_F(DataParallelCli, TwoRanksStoppedAndResumedEqualAStraightRunBitForBit) {
  // Dropout on: each rank's generator must come back from the checkpoint.
  const auto straight = train_args(dir_, "straight", 4, 20, "0.1") + " --nproc 2";
  ASSERT_EQ(shell(qkv_bin() + " train " + straight).exit_code, 0);
  const auto first = train_args(dir_, "resumed", 4, 10, "0.1") + " --nproc 2";
  ASSERT_EQ(shell(qkv_bin() + " train " + first).exit_code, 0);
  auto resumed = shell(qkv_bin() + " train --resume " + (dir_ / "resumed") +
                       " --set train.max_steps=20 --nproc 2");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto a = qkv::Checkpoint::load(dir_ / "straight/last.pt");
  const auto b = qkv::Checkpoint::load(dir_ / "resumed/last.pt");
  auto pa = a.model->parameters(), pb = b.model->parameters();
  for (size_t k = 0; k < pa.size(); ++k) EXPECT_TRUE(torch::equal(pa[k], pb[k])) << "param " << k;
  expect_same_losses(step_losses(dir_ / "resumed"), step_losses(dir_ / "straight"), 0);
  // Another number of ranks is refused with one line, and changes nothing.
  const std::string before = qkv::read_file_bytes(dir_ / "resumed/last.pt");
  auto other =
      shell(qkv_bin() + " train --resume " + (dir_ / "resumed") + " --set train.max_steps=30");
  EXPECT_NE(other.exit_code, 0);
  ASSERT_EQ(other.problems().size(), 1u) << other.err;
  EXPECT_NE(other.err.find("written by a run of 2 rank(s)"), std::string::npos) << other.err;
  EXPECT_EQ(qkv::read_file_bytes(dir_ / "resumed/last.pt"), before);
}

TEST_F(DataParallelCli, AKilledRankEndsTheOtherWithOneLineAndLastCheckpointLoads) {
  const uint16_t port = qkv::free_local_port();
  const auto args = train_args(dir_, "run", 4, 100000) + " --set checkpoint.every=5";
  auto launch = [&](int r) {
    // LOCAL_RANK as a launcher sets it: only local rank 0 prepares the data (without it both
    // ranks prepared into one directory at once, and one rename failed in CI).
    return "env RANK=" + std::to_string(r) + " LOCAL_RANK=" + std::to_string(r) +
           " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " " +
           qkv_bin() + " train " + args;
  };
  // Rank 1 in the background, its pid kept; rank 0 in the foreground once last.pt exists.
  const std::string pid_file = dir_ / "rank1.pid";
  const std::string command = "(" + launch(1) + " > /dev/null 2>&1 & echo $! > " + pid_file +
                              "; for i in $(seq 600); do [ -e " + (dir_ / "run/last.pt") +
                              " ] && break; sleep 0.1; done; kill -9 $(cat " + pid_file + ")) & " +
                              launch(0) + " > /dev/null";
  const auto o = shell(command);
  EXPECT_NE(o.exit_code, 0);
  EXPECT_LT(o.seconds, 120) << "rank 0 should end within the 30 s collective timeout";
  const auto problems = o.problems();
  ASSERT_EQ(problems.size(), 1u) << "exit code " << o.exit_code << "\n" << o.err;
  EXPECT_NE(problems[0].find("rank 0: "), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("failed"), std::string::npos) << problems[0];
  const auto ckpt = qkv::Checkpoint::load(dir_ / "run/last.pt");
  EXPECT_GE(ckpt.state.step, 5);
}

TEST_F(DataParallelCli, SigtermToNprocStopsEveryWorkerAfterTheSameStepWithACheckpoint) {
  const auto o = shell(once_training("> /dev/null", "kill -TERM $pid; wait $pid;"));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.err.find("rank 0 info stopped at step"), std::string::npos) << o.err;
  const auto ckpt = qkv::Checkpoint::load(dir_ / "run/last.pt");
  EXPECT_EQ(ckpt.state.world_size, 2);
  // The checkpoint is of the step the job stopped after: the metrics end there too.
  EXPECT_EQ(qkv::RunMetrics::load(dir_ / "run/metrics.jsonl").steps.back().step, ckpt.state.step);
}

TEST_F(DataParallelCli, KillingTheLauncherStopsItsWorkersWithACheckpoint) {
  // The launcher is killed outright once training has begun; its workers must not train on.
  const auto o = shell(once_training(
      "> /dev/null 2>&1",
      "workers=$(pgrep -P $pid); kill -9 $pid; for i in $(seq 300); do alive=0; for w in "
      "$workers; do kill -0 $w 2> /dev/null && alive=1; done; [ $alive = 0 ] && break; sleep "
      "0.1; done; echo \"workers $(echo $workers | wc -w) alive $alive after $i\" >&2;"));
  EXPECT_NE(o.err.find("workers 2 alive 0"), std::string::npos) << o.err;
  // They stopped through SIGTERM: a checkpoint of both ranks, and the run directory free again.
  const auto ckpt = qkv::Checkpoint::load(dir_ / "run/last.pt");
  EXPECT_EQ(ckpt.state.world_size, 2);
  const auto resumed =
      shell(qkv_bin() + " train --resume " + (dir_ / "run") +
            " --set train.max_steps=" + std::to_string(ckpt.state.step + 1) + " --nproc 2");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
}

TEST_F(DataParallelCli, ALostWorkerIsOneLineNamingItsRank) {
  // Rank 1 (found by its environment) is killed outright once training has begun.
  const auto o =
      shell(once_training("> /dev/null",
                          "for w in $(pgrep -P $pid); do tr \"\\0\" \"\\n\" < /proc/$w/environ | "
                          "grep -qx RANK=1 && kill -9 $w; done; wait $pid;"));
  EXPECT_NE(o.exit_code, 0);
  const auto problems = o.problems();
  ASSERT_EQ(problems.size(), 1u) << o.err;
  EXPECT_NE(problems[0].find("rank 1 was killed by signal 9"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("the checkpoints written before are kept"), std::string::npos)
      << problems[0];
  EXPECT_NO_THROW(qkv::Checkpoint::load(dir_ / "run/last.pt"));
}

TEST_F(DataParallelCli, NprocReportsAFailedWorker) {
  // A worker that cannot start training (no such config key) fails the job, non-zero.
  auto o = shell(qkv_bin() + " train " + train_args(dir_, "bad", 4) +
                 " --set runtime.backend=mpi --nproc 2");
  EXPECT_NE(o.exit_code, 0);
  EXPECT_NE(o.err.find("runtime.backend"), std::string::npos) << o.err;
}

TEST_F(DataParallelCli, PortInUseAndUnreachableRankZeroGiveOneLine) {
  // Something already listens on the port rank 0 should listen on.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof addr;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  const auto args = train_args(dir_, "run", 4) + " --set runtime.timeout_s=3";
  auto in_use = shell("env RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " " +
                      qkv_bin() + " train " + args);
  close(fd);
  EXPECT_NE(in_use.exit_code, 0);
  ASSERT_EQ(in_use.problems().size(), 1u) << in_use.err;
  EXPECT_NE(in_use.err.find("rank 0 cannot listen on MASTER_ADDR:MASTER_PORT 127.0.0.1:" + port),
            std::string::npos)
      << in_use.err;
  // Nobody listens on this one: rank 1 gives up after the timeout.
  const std::string nobody = std::to_string(qkv::free_local_port());
  auto unreachable = shell("env RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + nobody +
                           " " + qkv_bin() + " train " + args);
  EXPECT_NE(unreachable.exit_code, 0);
  ASSERT_EQ(unreachable.problems().size(), 1u) << unreachable.err;
  EXPECT_NE(unreachable.err.find("rank 1 cannot reach rank 0 at MASTER_ADDR:MASTER_PORT"),
            std::string::npos)
      << unreachable.err;
  EXPECT_LT(unreachable.seconds, 60);
  // A malformed variable is named.
  auto malformed = shell("env RANK=2 WORLD_SIZE=2 " + qkv_bin() + " train " + args);
  EXPECT_NE(malformed.exit_code, 0);
  EXPECT_NE(malformed.err.find("RANK=2: expected a whole number from 0 to 1"), std::string::npos)
      << malformed.err;
  EXPECT_FALSE(fs::exists(dir_ / "run/last.pt"));
}

// Two hosts: rank 0 and rank 1 in network namespaces of their own joined by a veth pair, so the
// gradients cross a real interface, addressed by rank 0's address on it.
TEST_F(DataParallelCli, TwoRanksAcrossTwoNetworkNamespaces) {
  if (geteuid() != 0) GTEST_SKIP() << "ip netns needs root";
  const std::string tag = std::to_string(getpid() % 100000);
  const std::string ns0 = "qkv0_" + tag, ns1 = "qkv1_" + tag;
  const std::string setup =
      "ip netns add " + ns0 + " && ip netns add " + ns1 + " && ip link add qv0_" + tag + " netns " +
      ns0 + " type veth peer name qv1_" + tag + " netns " + ns1 + " && ip -n " + ns0 +
      " addr add 10.231.0.1/24 dev qv0_" + tag + " && ip -n " + ns1 +
      " addr add 10.231.0.2/24 dev qv1_" + tag + " && ip -n " + ns0 + " link set qv0_" + tag +
      " up && ip -n " + ns1 + " link set qv1_" + tag + " up && ip -n " + ns0 +
      " link set lo up && ip -n " + ns1 + " link set lo up";
  const auto made = shell(setup);
  struct Cleanup {
    std::string ns0, ns1;
    ~Cleanup() {
      std::system(
          ("ip netns del " + ns0 + " 2>/dev/null; ip netns del " + ns1 + " 2>/dev/null").c_str());
    }
  } cleanup{ns0, ns1};
  if (made.exit_code != 0) GTEST_SKIP() << "ip netns does not work here: " << made.err;
  auto loop = shell(qkv_bin() + " train " + train_args(dir_, "loopback", 4) + " --nproc 2");
  ASSERT_EQ(loop.exit_code, 0) << loop.err;
  auto across = shell(env_launch(train_args(dir_, "veth", 4), "10.231.0.1", 29531,
                                 "ip netns exec " + ns0, "ip netns exec " + ns1));
  ASSERT_EQ(across.exit_code, 0) << across.err;
  expect_same_losses(step_losses(dir_ / "veth"), step_losses(dir_ / "loopback"), 0);
}

}  // namespace
