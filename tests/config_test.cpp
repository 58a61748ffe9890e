// Config files: every kind of error names the file, the key and what was expected.
#include <gtest/gtest.h>

#include <cstdlib>

#include "qkv/config/config.h"
#include "test_support.h"

namespace {

using qkv::Config;
using qkv::ConfigError;
using qkv::testing::TempDir;

std::string load_error(const std::string& path, const std::vector<std::string>& overrides = {}) {
  try {
    Config::load(path, overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string shipped(const std::string& name) {
  return std::string(QKV_SOURCE_DIR) + "/configs/" + name;
}

TEST(Config, ShippedConfigsLoadWithTheIssueValues) {
  for (auto name : {"shakespeare_char.yaml", "shakespeare_char_large.yaml", "shakespeare_bpe.yaml",
                    "tiny.yaml"})
    EXPECT_NO_THROW(Config::load(shipped(name))) << name;
  auto c = Config::load(shipped("shakespeare_char.yaml"));
  EXPECT_EQ(c.model.n_layer, 4);
  EXPECT_EQ(c.model.n_head, 4);
  EXPECT_EQ(c.model.d_model, 128);
  EXPECT_EQ(c.model.block_size, 64);
  EXPECT_EQ(c.train.batch_size, 12);
  EXPECT_EQ(c.train.max_steps, 2000);
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_DOUBLE_EQ(c.optim.min_lr, 1e-4);
  EXPECT_EQ(c.optim.warmup_steps, 100);
  EXPECT_DOUBLE_EQ(c.optim.beta2, 0.99);
  EXPECT_EQ(c.eval.every, 250);
  EXPECT_EQ(c.eval.batches, 20);
  auto large = Config::load(shipped("shakespeare_char_large.yaml"));
  EXPECT_EQ(large.model.d_model, 384);
  EXPECT_EQ(large.model.block_size, 256);
  EXPECT_DOUBLE_EQ(large.model.dropout, 0.2);
}

TEST(Config, UnknownKeySuggestsTheClosest) {
  TempDir dir("config_unknown");
  qkv::testing::write_file(dir / "c.yaml",
                           "data:\n  files: [x]\n  dir: d\ntrain:\n  batchsize: 3\n");
  EXPECT_EQ(
      load_error(dir / "c.yaml"),
      dir / "c.yaml" + ":5: unknown key 'train.batchsize' (did you mean 'train.batch_size'?)");
  qkv::testing::write_file(dir / "s.yaml", "trian:\n  batch_size: 3\n");
  EXPECT_EQ(
      load_error(dir / "s.yaml"),
      dir / "s.yaml" + ":2: unknown key 'trian.batch_size' (did you mean 'train.batch_size'?)");
}

TEST(Config, WrongTypeAndOutOfRangeNameKeyAndExpectation) {
  TempDir dir("config_types");
  qkv::testing::write_file(dir / "c.yaml", "train:\n  batch_size: abc\n");
  EXPECT_EQ(load_error(dir / "c.yaml"),
            dir / "c.yaml" + ":2: train.batch_size: expected an integer, got 'abc'");
  qkv::testing::write_file(dir / "d.yaml", "model:\n  dropout: 1.5\n");
  EXPECT_EQ(load_error(dir / "d.yaml"),
            dir / "d.yaml" + ":2: model.dropout: expected a number in [0, 1), got 1.5");
  qkv::testing::write_file(dir / "e.yaml", "runtime:\n  device: gpu\n");
  EXPECT_EQ(
      load_error(dir / "e.yaml"),
      dir / "e.yaml" + ":2: runtime.device: expected one of 'auto', 'cpu', 'cuda', got 'gpu'");
  qkv::testing::write_file(dir / "f.yaml",
                           "data:\n  files: [x]\n  dir: d\nmodel:\n  d_model: 100\n  n_head: 3\n");
  EXPECT_EQ(load_error(dir / "f.yaml"),
            dir / "f.yaml" + ": model.d_model (100) must be divisible by model.n_head (3)");
  qkv::testing::write_file(dir / "g.yaml", "train: [1, 2\n");
  EXPECT_NE(load_error(dir / "g.yaml").find("invalid YAML"), std::string::npos);
}

TEST(Config, MissingFileIsNamed) {
  EXPECT_EQ(load_error("/no/such/config.yaml"), "/no/such/config.yaml: config file not found");
}

TEST(Config, SetOverridesAnyKeyAndChecksIt) {
  auto c = Config::load(shipped("tiny.yaml"),
                        {"train.batch_size=9", "optim.lr=5e-4", "data.files=[a.txt, b*.txt]"});
  EXPECT_EQ(c.train.batch_size, 9);
  EXPECT_DOUBLE_EQ(c.optim.lr, 5e-4);
  EXPECT_EQ(c.data.files, (std::vector<std::string>{"a.txt", "b*.txt"}));
  EXPECT_EQ(load_error(shipped("tiny.yaml"), {"train.batch_size=0"}),
            "override train.batch_size=0: train.batch_size: expected an integer >= 1, got 0");
  EXPECT_EQ(load_error(shipped("tiny.yaml"), {"optim.lrr=1"}),
            "override optim.lrr=1: unknown key 'optim.lrr' (did you mean 'optim.lr'?)");
  EXPECT_EQ(load_error(shipped("tiny.yaml"), {"runtime.kernels=fast"}),
            "override runtime.kernels=fast: runtime.kernels: expected one of 'auto', 'fused', "
            "'reference', got 'fast'");
  EXPECT_EQ(load_error(shipped("tiny.yaml"), {"train.batch_size"}),
            "override train.batch_size: expected section.key=value");
  try {
    Config::load(shipped("tiny.yaml"), {"runtime.dtype=fp16"});
    FAIL() << "fp16 accepted";
  } catch (const qkv::ConfigError& e) {
    EXPECT_EQ(e.override_assignment(), "runtime.dtype=fp16");
    EXPECT_EQ(e.detail(), "runtime.dtype: expected one of 'fp32', 'bf16', got 'fp16'");
  }
}

TEST(Config, ResolvedYamlRoundTrips) {
  auto c = Config::load(shipped("shakespeare_bpe.yaml"), {"model.n_layer=3", "runtime.dtype=bf16"});
  auto again = Config::parse(c.to_yaml(), "resolved");
  EXPECT_EQ(again.to_yaml(), c.to_yaml());
  EXPECT_EQ(again.model.n_layer, 3);
  EXPECT_EQ(again.runtime.dtype, qkv::ComputeDtype::kBf16);
  EXPECT_EQ(again.tokenizer.kind, "sentencepiece");
  EXPECT_EQ(again.tokenizer.vocab_size, 1024);
  // Every key the schema knows appears in the resolved file.
  for (const auto& key : Config::known_keys())
    EXPECT_NE(c.to_yaml().find(key.substr(key.find('.') + 1) + ":"), std::string::npos) << key;
}

TEST(CommandLine, BadConfigExitsNonZeroWithOneLineAndWritesNothing) {
  TempDir dir("config_cli");
  const std::string run = dir / "run";
  const std::string cmd = std::string(QKV_BINARY) + " train " + shipped("tiny.yaml") +
                          " --set train.out_dir=" + run + " --set model.n_head=5 2> " +
                          (dir / "err.txt");
  int status = std::system(cmd.c_str());
  EXPECT_NE(status, 0);
  std::ifstream in(dir / "err.txt");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("model.d_model (32) must be divisible by model.n_head (5)"), std::string::npos)
      << all;
  EXPECT_EQ(std::count(all.begin(), all.end(), '\n'), 1) << all;
  EXPECT_FALSE(std::filesystem::exists(run));
}

// The library speaks of overrides; the command line of the --set the user typed.
TEST(CommandLine, BadOverrideIsNamedAsTheSetOptionTyped) {
  TempDir dir("config_cli_set");
  const std::string cmd = std::string(QKV_BINARY) + " train " + shipped("tiny.yaml") +
                          " --set train.out_dir=" + (dir / "run") +
                          " --set train.batch_size=0 2> " + (dir / "err.txt");
  EXPECT_NE(std::system(cmd.c_str()), 0);
  std::ifstream in(dir / "err.txt");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("--set train.batch_size=0: train.batch_size: expected an integer >= 1, got 0"),
            std::string::npos)
      << all;
  EXPECT_EQ(all.find("override"), std::string::npos) << all;
}

}  // namespace

namespace {

// Found by fuzz/config_fuzz.cpp: a YAML key that is not a name ("? [a, b]") escaped as a raw
// yaml-cpp conversion error.
TEST(Config, AKeyThatIsNotANameIsAConfigError) {
  try {
    qkv::Config::parse("model:\n  ? [n_layer, n_head]\n  : 2\n", "x.yaml");
    FAIL() << "a list as a key was accepted";
  } catch (const qkv::ConfigError& e) {
    EXPECT_STREQ(e.what(), "x.yaml:2: expected a key name, got a list");
  }
}

}  // namespace
