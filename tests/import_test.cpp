// qkv import: a GPT-2 made by Hugging Face transformers (tests/gpt2_reference.py, tied and untied
// output matrix, gelu_new) read into qkv gives transformers' logits, greedy text and NLL, exports
// back to the same tensors; what cannot be mapped is refused with one line and nothing written.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include <torch/torch.h>

#include "qkv/export/model_export.h"
#include "qkv/export/model_import.h"
#include "qkv/io/file_bytes.h"
#include "qkv/io/safetensors.h"
#include "qkv/io/sha256.h"
#include "qkv/train/checkpoint.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using qkv::testing::run_command;
using qkv::testing::TempDir;

// The reference directories, made once for all the tests here and kept beside the test binary
// (transformers takes ~30 s to start, and ctest runs each test in its own process): under a file
// lock, and made again when gpt2_reference.py changes.
class Gpt2Import : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string python = std::string(QKV_SOURCE_DIR) + "/build-libtorch2/venv/bin/python";
    if (run_command(python + " -c 'import transformers' > /dev/null 2>&1").exit_code != 0) {
      missing_ = "no Python with transformers (scripts/setup_test_python.sh)";
      return;
    }
    const std::string script = std::string(QKV_SOURCE_DIR) + "/tests/gpt2_reference.py";
    qkv::Sha256 sha;
    sha.update(qkv::read_file_bytes(script));
    dir_ =
        (fs::path(QKV_BINARY).parent_path() / ("gpt2_reference_" + sha.hex_digest().substr(0, 12)))
            .string();
    const int lock = ::open((dir_ + ".lock").c_str(), O_CREAT | O_RDWR, 0644);
    ::flock(lock, LOCK_EX);
    if (!fs::exists(dir_ + "/done")) {
      fs::remove_all(dir_);
      const auto r = run_command(python + " " + script + " " + dir_ + " 2>&1");
      if (r.exit_code == 0)
        qkv::testing::write_file(dir_ + "/done", "");
      else
        missing_ = "gpt2_reference.py failed: " + r.out;
    }
    ::close(lock);  // releases the lock
    scratch_ = new TempDir("gpt2_import");
  }
  static void TearDownTestSuite() {
    delete scratch_;
    scratch_ = nullptr;
  }
  void SetUp() override {
    if (missing_.empty()) return;
    if (std::getenv("CI") || missing_.rfind("gpt2_reference", 0) == 0) FAIL() << missing_;
    GTEST_SKIP() << missing_;
  }
  static std::string hf(const std::string& variant) { return dir_ + "/" + variant + "/hf"; }
  static json expected(const std::string& variant) {
    return json::parse(qkv::read_file_bytes(dir_ + "/" + variant + "/expected.json"));
  }
  static std::string work(const std::string& leaf) { return *scratch_ / leaf; }

  static std::string dir_;
  static TempDir* scratch_;
  static std::string missing_;
};
std::string Gpt2Import::dir_;
TempDir* Gpt2Import::scratch_ = nullptr;
std::string Gpt2Import::missing_;

TEST_F(Gpt2Import, LogitsGreedyTextAndNllAreTransformers) {
  for (const std::string variant : {"tied", "untied"}) {
    SCOPED_TRACE(variant);
    const auto want = expected(variant);
    const std::string run = work(variant + "_run");
    auto r =
        run_command(std::string(QKV_BINARY) + " import " + hf(variant) + " --out " + run + " 2>&1");
    ASSERT_EQ(r.exit_code, 0) << r.out;

    auto ckpt = qkv::Checkpoint::load(run);
    ckpt.model->eval();
    EXPECT_EQ(ckpt.config.model.tie_weights, variant == "tied");
    const auto ids = ckpt.tokenizer->encode(want["text"].get<std::string>());
    EXPECT_EQ(ids, want["ids"].get<std::vector<qkv::TokenId>>());
    torch::NoGradGuard no_grad;
    const auto logits = ckpt.model->forward(
        torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0))[0];
    std::vector<float> flat;
    for (const auto& row : want["logits"])
      for (double x : row) flat.push_back(float(x));
    const auto ref = torch::tensor(flat).view(logits.sizes());
    const double diff = (logits - ref).abs().max().item<double>();
    EXPECT_LE(diff, 1e-4) << "max |qkv - transformers| logit";

    // Greedy decoding with the KV cache, as `qkv generate` runs it: transformers' 64 tokens.
    const std::string prompt = want["prompt"];
    r = run_command(std::string(QKV_BINARY) + " generate " + run + " --prompt '" + prompt +
                    "' --max-new-tokens 64 --temperature 0 2> /dev/null");
    ASSERT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.out, prompt + want["generated"].get<std::string>() + "\n");

    // qkv eval over one window: transformers' mean NLL.
    const std::string text_file = work(variant + "_nll.txt");
    qkv::testing::write_file(text_file, want["nll_text"]);
    r = run_command(std::string(QKV_BINARY) + " eval " + run + " --data " + text_file +
                    " --json 2> /dev/null");
    ASSERT_EQ(r.exit_code, 0);
    const auto eval = json::parse(r.out);
    EXPECT_EQ(eval["tokens_scored"], want["nll_tokens"].get<int64_t>() - 1);
    EXPECT_NEAR(eval["mean_nll"].get<double>(), want["mean_nll"].get<double>(), 1e-5);

    // Exported back to GPT-2's layout: every tensor of the original, bit for bit.
    const std::string back = work(variant + "_export");
    r = run_command(std::string(QKV_BINARY) + " export " + run + " --format hf --out " + back +
                    " 2>&1");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto original = qkv::SafetensorsFile::read(hf(variant) + "/model.safetensors");
    const auto exported = qkv::SafetensorsFile::read(back + "/model.safetensors");
    for (const auto& t : original.tensors()) {
      const auto* e = exported.find(t.name);
      ASSERT_NE(e, nullptr) << t.name;
      EXPECT_EQ(e->shape, t.shape) << t.name;
      EXPECT_EQ(e->bytes, t.bytes) << t.name;
    }
    const auto config = json::parse(qkv::read_file_bytes(back + "/config.json"));
    EXPECT_EQ(config["activation_function"], "gelu_new");
    EXPECT_EQ(config["tie_word_embeddings"], variant == "tied");
    EXPECT_EQ(qkv::read_file_bytes(back + "/merges.txt"),
              qkv::read_file_bytes(hf(variant) + "/merges.txt"));
  }
}

// A copy of the tied reference directory, changed by `change`, imported: the one-line error
// must hold `says`, and the output directory must not have been made.
void expect_refused(const std::string& from, const std::string& dir,
                    const std::function<void(const std::string&)>& change,
                    const std::string& says) {
  fs::remove_all(dir);
  fs::copy(from, dir, fs::copy_options::recursive);
  change(dir);
  const std::string out = dir + "_run";
  const auto r =
      run_command(std::string(QKV_BINARY) + " import " + dir + " --out " + out + " 2>&1");
  EXPECT_NE(r.exit_code, 0) << says;
  EXPECT_NE(r.out.find(says), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_FALSE(fs::exists(out)) << says;
}

void edit_config(const std::string& dir, const std::function<void(json&)>& edit) {
  auto config = json::parse(qkv::read_file_bytes(dir + "/config.json"));
  edit(config);
  qkv::testing::write_file(dir + "/config.json", config.dump());
}

// The safetensors file without the tensor `name`.
void drop_tensor(const std::string& dir, const std::string& name) {
  const auto file = qkv::SafetensorsFile::read(dir + "/model.safetensors");
  std::vector<qkv::SafetensorsTensor> kept;
  for (const auto& t : file.tensors())
    if (t.name != name) kept.push_back(t);
  qkv::write_file_atomically(dir + "/model.safetensors", qkv::serialize_safetensors(kept));
}

TEST_F(Gpt2Import, WhatCannotBeMappedIsRefusedNamingTheFileAndNothingIsWritten) {
  const std::string from = hf("tied");
  const std::string dir = work("bad");
  expect_refused(
      from, dir,
      [](const std::string& d) { edit_config(d, [](json& c) { c["model_type"] = "llama"; }); },
      "config.json: model_type is 'llama'; qkv imports GPT-2 (GPT2LMHeadModel) only");
  expect_refused(
      from, dir,
      [](const std::string& d) {
        edit_config(d, [](json& c) { c["activation_function"] = "relu"; });
      },
      "activation_function 'relu'");
  expect_refused(
      from, dir,
      [](const std::string& d) { fs::rename(d + "/model.safetensors", d + "/pytorch_model.bin"); },
      "no model.safetensors (pytorch_model.bin is a pickle qkv does not read");
  expect_refused(
      from, dir, [](const std::string& d) { drop_tensor(d, "transformer.ln_f.bias"); },
      "model.safetensors: no tensor 'ln_f.bias'");
  expect_refused(
      from, dir,
      [](const std::string& d) { edit_config(d, [](json& c) { c["n_positions"] = 64; }); },
      "model.safetensors: tensor 'wpe.weight' has shape [128, 64], config.json says [64, 64]");
  expect_refused(
      from, dir,
      [](const std::string& d) { edit_config(d, [](json& c) { c["vocab_size"] = 391; }); },
      "the tokenizer has 392 tokens, config.json's vocab_size is 391");
  expect_refused(
      from, dir, [](const std::string& d) { fs::remove(d + "/merges.txt"); },
      "expected GPT-2's tokenizer files, vocab.json and merges.txt, or tokenizer.json");
  expect_refused(
      from, dir, [](const std::string& d) { edit_config(d, [](json& c) { c["n_layer"] = 2; }); },
      "tensor 'h.2.attn.c_attn.bias' has no place in GPT-2's layout");
  // An existing, non-empty output directory: refused before anything is read.
  fs::create_directories(work("taken"));
  qkv::testing::write_file(work("taken") + "/keep.txt", "mine");
  const auto r = run_command(std::string(QKV_BINARY) + " import " + from + " --out " +
                             work("taken") + " 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(qkv::read_file_bytes(work("taken") + "/keep.txt"), "mine");
  EXPECT_EQ(std::distance(fs::directory_iterator(work("taken")), fs::directory_iterator()), 1);
}

}  // namespace

namespace {

// `qkv eval RUN --data FILE --json`'s mean NLL.
double mean_nll(const std::string& run, const std::string& data) {
  const auto r = run_command(std::string(QKV_BINARY) + " eval " + run + " --data " + data +
                             " --json 2> /dev/null");
  EXPECT_EQ(r.exit_code, 0) << run;
  return r.exit_code == 0 ? json::parse(r.out)["mean_nll"].get<double>() : 0.0;
}

TEST_F(Gpt2Import, FineTuningStartsFromTheImportWithItsTokenizerAndLowersValidationLoss) {
  const std::string source = work("ft_source");
  auto r =
      run_command(std::string(QKV_BINARY) + " import " + hf("tied") + " --out " + source + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  qkv::testing::write_file(work("ft_corpus.txt"), qkv::testing::sample_corpus(600));
  const std::string common = std::string(QKV_BINARY) + " train " + QKV_SOURCE_DIR +
                             "/configs/tiny.yaml --init-from " + source +
                             " --set data.files=" + work("ft_corpus.txt") +
                             " --set data.dir=" + work("ft_data") + " --set train.out_dir=";
  // The source's model keys are not the config's to change.
  r = run_command(common + work("ft_refused") + " --set model.n_layer=2 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("model.n_layer=2: model keys come from train.init_from"), std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(work("ft_refused")));
  r = run_command(common + work("ft_refused") + " --set model.block_size=129 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("model.block_size=129: at most the context of train.init_from (128)"),
            std::string::npos)
      << r.out;

  r = run_command(common + work("ft_run") + " --set train.max_steps=50 --set train.batch_size=8 " +
                  "--set optim.lr=1e-3 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  // The corpus was tokenized by GPT-2's tokenizer from the source, not a new char vocabulary.
  const auto meta = json::parse(qkv::read_file_bytes(work("ft_data") + "/meta.json"));
  EXPECT_EQ(meta["tokenizer"]["kind"], "bpe");
  EXPECT_EQ(meta["tokenizer"]["vocab_size"], 392);
  const auto tuned = qkv::Checkpoint::load(work("ft_run"));
  EXPECT_EQ(tuned.config.model.n_layer, 3);
  EXPECT_EQ(tuned.config.model.activation, "gelu_tanh");
  EXPECT_EQ(tuned.state.step, 50);
  // A shorter context keeps the source's first positions (nanoGPT's crop_block_size).
  r = run_command(common + work("ft_short") +
                  " --set train.max_steps=1 --set optim.lr=1e-9 --set optim.min_lr=1e-10 " +
                  "--set model.block_size=32 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto short_run = qkv::Checkpoint::load(work("ft_short") + "/last.pt");
  const auto full = qkv::Checkpoint::load(source);
  EXPECT_EQ(short_run.config.model.block_size, 32);
  // (one step at a learning rate of 1e-9 moves nothing visible)
  EXPECT_TRUE(torch::allclose(short_run.model->pos_emb->weight,
                              full.model->pos_emb->weight.slice(0, 0, 32), 0, 1e-6));
  EXPECT_TRUE(
      torch::allclose(short_run.model->tok_emb->weight, full.model->tok_emb->weight, 0, 1e-6));
  EXPECT_FALSE(torch::allclose(short_run.model->pos_emb->weight,
                               full.model->pos_emb->weight.slice(0, 32, 64), 0, 1e-3));

  const double before = mean_nll(source, work("ft_data") + "/val.bin");
  const double after = mean_nll(work("ft_run"), work("ft_data") + "/val.bin");
  EXPECT_LT(after, before - 0.5) << "validation NLL " << before << " -> " << after;
}

}  // namespace
