// qkv import: a GPT-2 made by Hugging Face transformers (tests/gpt2_reference.py, tied and untied
// output matrix, gelu_new) read into qkv gives transformers' logits, greedy text and NLL, exports
// back to the same tensors; what cannot be mapped is refused with one line and nothing written.
#include <gtest/gtest.h>

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
#include "qkv/train/checkpoint.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using qkv::testing::run_command;
using qkv::testing::TempDir;

// The reference directories, made once for every test here (transformers takes ~30 s to start).
class Gpt2Import : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string python = std::string(QKV_SOURCE_DIR) + "/build-libtorch2/venv/bin/python";
    if (run_command(python + " -c 'import transformers' > /dev/null 2>&1").exit_code != 0) {
      missing_ = "no Python with transformers (scripts/setup_test_python.sh)";
      return;
    }
    dir_ = new TempDir("gpt2_import");
    const auto r = run_command(python + " " + QKV_SOURCE_DIR + "/tests/gpt2_reference.py " +
                               dir_->str() + " 2>&1");
    if (r.exit_code != 0) missing_ = "gpt2_reference.py failed: " + r.out;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (missing_.empty()) return;
    if (std::getenv("CI") || missing_.rfind("gpt2_reference", 0) == 0) FAIL() << missing_;
    GTEST_SKIP() << missing_;
  }
  static std::string hf(const std::string& variant) { return *dir_ / (variant + "/hf"); }
  static json expected(const std::string& variant) {
    return json::parse(qkv::read_file_bytes(*dir_ / (variant + "/expected.json")));
  }
  static std::string work(const std::string& leaf) { return *dir_ / leaf; }

  static TempDir* dir_;
  static std::string missing_;
};
TempDir* Gpt2Import::dir_ = nullptr;
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
