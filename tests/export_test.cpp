// qkv export: the safetensors format by hand, the round trip through qkv, and the Hugging Face
// layout checked by transformers itself (tests/hf_export_check.py).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <torch/version.h>
#include <nlohmann/json.hpp>

#include "qkv/eval/perplexity_evaluator.h"
#include "qkv/export/model_export.h"
#include "qkv/io/file_bytes.h"
#include "qkv/io/safetensors.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "qkv/tokenizer/sentencepiece_tokenizer.h"
#include "qkv/train/checkpoint.h"
#include "qkv/train/safetensors_checkpoint.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using qkv::testing::TempDir;

std::string_view view_of(const std::vector<float>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)};
}

TEST(Safetensors, WritesTheFormatByteForByte) {
  const std::vector<float> values = {1.0f, -2.5f};
  const std::string file = qkv::serialize_safetensors({{"w", "F32", {2}, view_of(values)}});
  // Hand-written: the header, padded with spaces to 8 bytes, its length first, little-endian.
  std::string header = R"({"w":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  ASSERT_EQ(file.size(), 8 + header.size() + 8);
  EXPECT_EQ(static_cast<unsigned char>(file[0]), header.size());
  EXPECT_EQ(file.substr(1, 7), std::string(7, '\0'));
  EXPECT_EQ(file.substr(8, header.size()), header);
  float back[2];
  std::memcpy(back, file.data() + 8 + header.size(), 8);
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], -2.5f);
}

TEST(Safetensors, ReadsBackWhatItWrote) {
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  const std::vector<float> b = {7};
  const std::string bytes = qkv::serialize_safetensors(
      {{"a", "F32", {2, 3}, view_of(a)}, {"b.c", "F32", {}, view_of(b)}}, {{"format", "pt"}});
  const auto file = qkv::SafetensorsFile::parse(bytes, "mem");
  ASSERT_EQ(file.tensors().size(), 2u);
  const auto* ta = file.find("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ta->bytes, view_of(a));
  EXPECT_EQ(file.find("b.c")->bytes, view_of(b));
  EXPECT_EQ(file.find("b.c")->shape.size(), 0u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.find("missing"), nullptr);
}

TEST(Safetensors, MalformedFilesAreOneClearError) {
  const std::vector<float> a = {1, 2};
  const std::string good = qkv::serialize_safetensors({{"a", "F32", {2}, view_of(a)}});
  auto error_of = [](const std::string& bytes) {
    try {
      qkv::SafetensorsFile::parse(bytes, "f.safetensors");
    } catch (const qkv::SafetensorsError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("abc").find("too short"), std::string::npos);
  EXPECT_NE(error_of(good.substr(0, 20)).find("header length"), std::string::npos);
  EXPECT_NE(error_of(good.substr(0, good.size() - 1)).find("lie outside"), std::string::npos);
  auto with_header = [](std::string header) {
    std::string out(8, '\0');
    const uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    return out + header + std::string(8, '\0');
  };
  EXPECT_NE(error_of(with_header("{not json")).find("not JSON"), std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})"))
                .find("unknown dtype"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})"))
                .find("do not hold its shape"),
            std::string::npos);
  EXPECT_NE(error_of(with_header(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})"))
                .find("non-negative"),
            std::string::npos);
  EXPECT_EQ(error_of(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})")),
            "no error");
  EXPECT_THROW(qkv::serialize_safetensors({{"a", "F32", {3}, view_of(a)}}), qkv::SafetensorsError);
  EXPECT_THROW(
      qkv::serialize_safetensors({{"a", "F32", {2}, view_of(a)}, {"a", "F32", {2}, view_of(a)}}),
      qkv::SafetensorsError);
}

// A checkpoint in memory: the tiny config with `overrides`, a char tokenizer over the sample
// corpus and random weights, every one of them (norms and biases too) moved off its initial value
// so that a wrong mapping of any of them shows.
qkv::Checkpoint random_checkpoint(const TempDir& dir, std::vector<std::string> overrides = {},
                                  std::unique_ptr<qkv::Tokenizer> tokenizer = nullptr) {
  qkv::Checkpoint c;
  c.path = "memory";
  c.config = qkv::testing::tiny_config(dir, std::move(overrides));
  if (!tokenizer) {
    qkv::CharTokenizer::VocabularyBuilder vocab;
    vocab.add(qkv::testing::sample_corpus());
    tokenizer = std::make_unique<qkv::CharTokenizer>(vocab.build());
  }
  c.tokenizer = std::move(tokenizer);
  c.config.model.vocab_size = c.tokenizer->vocab_size();
  c.config.model.block_size = 64;
  torch::manual_seed(3);
  c.model = qkv::TransformerLM(c.config.model);
  torch::NoGradGuard no_grad;
  for (auto& p : c.model->parameters()) p.add_(torch::randn_like(p) * 0.2);
  c.model->eval();
  c.state.step = 123;
  return c;
}

TEST(Export, SafetensorsRoundTripGivesTheSamePerplexity) {
  TempDir dir("export_roundtrip");
  auto ckpt = random_checkpoint(dir);
  const auto result = qkv::export_model(ckpt, qkv::ExportFormat::kSafetensors, dir / "out");
  EXPECT_EQ(result.files.size(), 3u);
  auto back = qkv::Checkpoint::load(dir / "out");
  back.model->eval();
  EXPECT_EQ(back.state.step, 123);
  EXPECT_EQ(back.tokenizer->serialize(), ckpt.tokenizer->serialize());
  EXPECT_EQ(qkv::testing::max_param_difference(back.model, ckpt.model), 0.0);
  const std::string text = qkv::testing::sample_corpus(60);
  const auto ids = ckpt.tokenizer->encode(text);
  const auto a = qkv::evaluate_perplexity(ckpt.model, ids, text.size(), {});
  const auto b = qkv::evaluate_perplexity(back.model, ids, text.size(), {});
  EXPECT_GT(a.perplexity, 1.0);
  EXPECT_NEAR(b.perplexity, a.perplexity, 1e-6 * a.perplexity);
  EXPECT_THROW(back.load_optimizer(*std::make_unique<torch::optim::SGD>(
                   back.model->parameters(), torch::optim::SGDOptions(0.1))),
               qkv::CheckpointError);
}

TEST(Export, RefusesADirectoryThatHoldsFilesAndLeavesItAlone) {
  TempDir dir("export_refuse");
  auto ckpt = random_checkpoint(dir);
  fs::create_directories(dir / "out");
  qkv::testing::write_file(dir / "out/notes.txt", "mine");
  EXPECT_THROW(qkv::export_model(ckpt, qkv::ExportFormat::kHuggingFace, dir / "out"),
               qkv::ExportError);
  EXPECT_EQ(qkv::read_file_bytes(dir / "out/notes.txt"), "mine");
  EXPECT_FALSE(fs::exists(dir / "out/config.json"));
  size_t entries = std::distance(fs::directory_iterator(dir.str()), fs::directory_iterator());
  EXPECT_EQ(entries, 1u);  // no staging directory left behind
  // An empty directory is taken over.
  fs::create_directories(dir / "empty");
  qkv::export_model(ckpt, qkv::ExportFormat::kHuggingFace, dir / "empty");
  EXPECT_TRUE(fs::exists(dir / "empty/model.safetensors"));
  EXPECT_THROW(qkv::export_format_from_string("onnx"), std::invalid_argument);
}

TEST(Export, ADamagedExportIsOneLineNamingTheTensor) {
  TempDir dir("export_damaged");
  auto ckpt = random_checkpoint(dir);
  qkv::export_model(ckpt, qkv::ExportFormat::kSafetensors, dir / "out");
  // The same files with one tensor left out.
  const auto file = qkv::SafetensorsFile::read(dir / "out/model.safetensors");
  std::vector<qkv::SafetensorsTensor> kept;
  for (const auto& t : file.tensors())
    if (t.name != "ln_f.weight") kept.push_back(t);
  qkv::write_file_atomically(dir / "out/model.safetensors", qkv::serialize_safetensors(kept));
  try {
    qkv::Checkpoint::load(dir / "out");
    FAIL() << "loaded an export that lacks ln_f.weight";
  } catch (const qkv::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("no tensor 'ln_f.weight'"), std::string::npos) << e.what();
  }
  // A Hugging Face export is not read by qkv, and says so.
  qkv::export_model(ckpt, qkv::ExportFormat::kHuggingFace, dir / "hf");
  try {
    qkv::Checkpoint::load(dir / "hf");
    FAIL() << "loaded a Hugging Face export as a qkv model";
  } catch (const qkv::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("Hugging Face export"), std::string::npos) << e.what();
  }
}

TEST(Export, HuggingFaceLayoutFoldsTheScaleAndTransposesConv1D) {
  TempDir dir("export_layout");
  auto ckpt = random_checkpoint(dir, {"model.bias=false"});
  qkv::export_model(ckpt, qkv::ExportFormat::kHuggingFace, dir / "hf");
  const auto file = qkv::SafetensorsFile::read(dir / "hf/model.safetensors");
  auto tensor = [&](const std::string& name) {
    const auto* t = file.find(name);
    EXPECT_NE(t, nullptr) << name;
    return torch::from_blob(const_cast<char*>(t->bytes.data()), t->shape, torch::kFloat32).clone();
  };
  auto& m = *ckpt.model;
  const double scale = std::sqrt(double(ckpt.config.model.d_model));
  EXPECT_TRUE(torch::allclose(tensor("transformer.wte.weight"), m.tok_emb->weight * scale));
  auto* b0 = m.blocks[0]->as<qkv::TransformerBlockImpl>();
  const int64_t C = ckpt.config.model.d_model;
  const auto c_attn = tensor("transformer.h.0.attn.c_attn.weight");  // (C, 3C)
  ASSERT_EQ(c_attn.sizes(), (std::vector<int64_t>{C, 3 * C}));
  EXPECT_TRUE(torch::equal(c_attn.slice(1, C, 2 * C), b0->attn->w_k->weight.t()));
  EXPECT_TRUE(torch::equal(tensor("transformer.h.0.attn.c_attn.bias"), torch::zeros({3 * C})));
  EXPECT_TRUE(torch::equal(tensor("transformer.h.0.mlp.c_fc.weight"), b0->ffn->fc_in->weight.t()));
  EXPECT_TRUE(torch::equal(tensor("transformer.wpe.weight"), m.pos_enc->pe));
}

TEST(ExportCommand, ExportThenEvalGivesTheSamePerplexityAndGenerateReadsIt) {
  TempDir dir("export_cli");
  auto ckpt = random_checkpoint(dir);
  qkv::TrainingState state;
  state.step = 9;
  qkv::write_checkpoint(dir / "model.pt", ckpt.model, nullptr, ckpt.config, *ckpt.tokenizer, state);
  qkv::testing::write_file(dir / "text.txt", qkv::testing::sample_corpus(80));
  ASSERT_EQ(
      qkv::testing::run_qkv("export " + (dir / "model.pt") + " --out " + (dir / "st")).exit_code,
      0);
  auto perplexity = [&](const std::string& model) {
    const auto r = qkv::testing::run_qkv("eval " + model + " --data " + (dir / "text.txt") +
                                         " --json --threads 1");
    EXPECT_EQ(r.exit_code, 0) << model;
    return nlohmann::json::parse(r.out).at("perplexity").get<double>();
  };
  const double original = perplexity(dir / "model.pt");
  EXPECT_GT(original, 1.0);
  EXPECT_NEAR(perplexity(dir / "st"), original, 1e-6 * original);
  const auto text = qkv::testing::run_qkv("generate " + (dir / "st") +
                                          " --prompt 'The king' --max-new-tokens 20 --seed 1");
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_EQ(text.out.rfind("The king", 0), 0u) << text.out;
  // An existing export is never overwritten; an unknown format is refused before any work.
  const std::string before = qkv::read_file_bytes(dir / "st/model.safetensors");
  EXPECT_EQ(
      qkv::testing::run_qkv("export " + (dir / "model.pt") + " --out " + (dir / "st")).exit_code,
      1);
  EXPECT_EQ(qkv::read_file_bytes(dir / "st/model.safetensors"), before);
  EXPECT_EQ(
      qkv::testing::run_qkv("export " + (dir / "model.pt") + " --format onnx --out " + (dir / "x"))
          .exit_code,
      2);
  EXPECT_FALSE(fs::exists(dir / "x"));
}

TEST(ExportCommand, RemovesTheStagingOfExportsThatWereKilled) {
  TempDir dir("export_stale");
  auto ckpt = random_checkpoint(dir);
  qkv::write_checkpoint(dir / "model.pt", ckpt.model, nullptr, ckpt.config, *ckpt.tokenizer,
                        qkv::TrainingState{});
  // A dead export's staging (no process has pid 999999999) and a live one's (this test's).
  const std::string dead = dir / ".old.partial-999999999";
  const std::string live = dir / (".other.partial-" + std::to_string(::getpid()));
  for (const auto& d : {dead, live}) {
    fs::create_directories(d);
    qkv::testing::write_file(d + "/model.safetensors", "half");
  }
  ASSERT_EQ(
      qkv::testing::run_qkv("export " + (dir / "model.pt") + " --out " + (dir / "st")).exit_code,
      0);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live + "/model.safetensors"));
  EXPECT_TRUE(qkv::is_safetensors_export(dir / "st"));
}

TEST(VersionFlag, NamesQkvLibTorchAndTheBlas) {
  const auto r = qkv::testing::run_qkv("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind(std::string("qkv ") + QKV_VERSION + "\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\nLibTorch " TORCH_VERSION "\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nBLAS "), std::string::npos) << r.out;
}

// The interpreter with transformers, tokenizers and safetensors: QKV_TEST_PYTHON, else the
// environment scripts/setup_test_python.sh makes.
std::string hugging_face_python() {
  if (const char* p = std::getenv("QKV_TEST_PYTHON")) return p;
  const std::string venv = std::string(QKV_SOURCE_DIR) + "/build-libtorch2/venv/bin/python";
  if (!fs::exists(venv)) return "";
  const auto probe = qkv::testing::run_command(
      venv + " -c 'import transformers, tokenizers, safetensors' > /dev/null 2>&1");
  return probe.exit_code == 0 ? venv : "";
}

// Under CI the check must run: a missing environment fails instead of skipping.
#define REQUIRE_HUGGING_FACE(python)                                                        \
  do {                                                                                      \
    if ((python).empty()) {                                                                 \
      const std::string why =                                                               \
          "no Python with transformers (scripts/setup_test_python.sh, or QKV_TEST_PYTHON)"; \
      if (std::getenv("CI")) FAIL() << why;                                                 \
      GTEST_SKIP() << why;                                                                  \
    }                                                                                       \
  } while (0)

// Exports `ckpt` for Hugging Face and has transformers load it: its logits on `text` must equal
// qkv's to 1e-4 and its tokenizer must give qkv's ids.
void expect_transformers_agree(const qkv::Checkpoint& ckpt, const TempDir& dir,
                               const std::string& python, const std::string& text) {
  qkv::export_model(ckpt, qkv::ExportFormat::kHuggingFace, dir / "hf");
  const auto ids = ckpt.tokenizer->encode(text);
  ASSERT_LE(int64_t(ids.size()), ckpt.config.model.block_size);
  torch::NoGradGuard no_grad;
  auto idx = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
  qkv::TransformerLM model = ckpt.model;
  auto logits = model->forward(idx).squeeze(0).contiguous();  // (T, V)
  auto ids_tensor = idx.squeeze(0).contiguous();
  const std::string expected = qkv::serialize_safetensors(
      {{"ids",
        "I64",
        ids_tensor.sizes().vec(),
        {static_cast<const char*>(ids_tensor.data_ptr()), ids_tensor.nbytes()}},
       {"logits",
        "F32",
        logits.sizes().vec(),
        {static_cast<const char*>(logits.data_ptr()), logits.nbytes()}}});
  qkv::write_file_atomically(dir / "expected.safetensors", expected);
  qkv::testing::write_file(dir / "text.txt", text);
  const auto r = qkv::testing::run_command(
      python + " " + QKV_SOURCE_DIR + "/tests/hf_export_check.py " + (dir / "hf") + " " +
      (dir / "text.txt") + " " + (dir / "expected.safetensors") + " 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("transformers agrees"), std::string::npos) << r.out;
}

TEST(HuggingFaceExport, TransformersLoadsTheDefaultModel) {
  const std::string python = hugging_face_python();
  REQUIRE_HUGGING_FACE(python);
  TempDir dir("hf_default");
  auto ckpt = random_checkpoint(dir);
  expect_transformers_agree(ckpt, dir, python, "The king weeps for the river bank.\nA fool");
}

TEST(HuggingFaceExport, TransformersLoadsLearnedPositionsTiedAndUnbiased) {
  const std::string python = hugging_face_python();
  REQUIRE_HUGGING_FACE(python);
  TempDir dir("hf_variant");
  auto ckpt = random_checkpoint(
      dir, {"model.positional_encoding=learned", "model.tie_weights=true", "model.bias=false"});
  expect_transformers_agree(ckpt, dir, python, "My lord dreams of the crown of England.\n");
}

TEST(HuggingFaceExport, TransformersReadsTheSentencePieceModel) {
  REQUIRE_SENTENCEPIECE_PLUGIN();
  const std::string python = hugging_face_python();
  REQUIRE_HUGGING_FACE(python);
  TempDir dir("hf_spm");
  qkv::testing::write_file(dir / "corpus.txt", qkv::testing::sample_corpus());
  qkv::SentencePieceTrainOptions options;
  options.input_files = {dir / "corpus.txt"};
  options.vocab_size = 400;
  auto tok = std::make_unique<qkv::SentencePieceTokenizer>(
      qkv::SentencePieceTokenizer::train(options, dir.str()));
  auto ckpt = random_checkpoint(dir, {"tokenizer.kind=sentencepiece"}, std::move(tok));
  expect_transformers_agree(ckpt, dir, python,
                            "The queen remembers the money bank and the river bank.\n");
}

}  // namespace
