// qkv attention and qkv embed: the lecture's numbers through the real model and the real command,
// attention rows that are distributions, and contextual similarity checked independently.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "qkv/inspect/attention_probe.h"
#include "qkv/inspect/contextual_embeddings.h"
#include "qkv/io/file_bytes.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "qkv/tokenizer/sentencepiece_tokenizer.h"
#include "qkv/train/checkpoint.h"
#include "test_support.h"

namespace {

using qkv::testing::run_qkv;
using qkv::testing::TempDir;

// The lecture's words as single characters, so a char tokenizer reads "apdo" as
// "an apple and orange". Ids follow the sorted characters.
const std::string kLectureVocabulary = "adhop";
const std::map<char, std::vector<double>> kLectureVectors = {{'a', {0, 0, 3}},   // an
                                                             {'d', {0, 0, 2}},   // and
                                                             {'h', {4, 0, 0}},   // phone
                                                             {'o', {0, 3, 0}},   // orange
                                                             {'p', {2, 2, 0}}};  // apple

// A one-layer, one-head qkv model whose attention scores are exactly the lecture's dot products
// of unit-length 3-feature embeddings.
//
// The block normalises its input (pre-norm) before W^Q and W^K, so the embeddings are padded to
// 5 channels with two values chosen to give every token mean 0 and sum of squares 3. LayerNorm
// then only rescales by sqrt(5/3), the same for every token. W^Q = W^K = c * diag(1,1,1,0,0) pick
// the lecture's features back out, and c^2 = 3/sqrt(5) undoes both that rescaling and the model's
// 1/sqrt(d_k): q.k / sqrt(5) = c^2 (5/3) v.v' / sqrt(5) = v.v'. Positions are learned and zero.
qkv::TransformerLM lecture_model() {
  qkv::ModelConfig c;
  c.vocab_size = 5;
  c.block_size = 8;
  c.n_layer = 1;
  c.n_head = 1;
  c.d_model = 5;
  c.positional_encoding = qkv::PositionalEncodingKind::kLearned;
  qkv::TransformerLM model(c);
  torch::NoGradGuard no_grad;
  for (size_t id = 0; id < kLectureVocabulary.size(); ++id) {
    auto v = kLectureVectors.at(kLectureVocabulary[id]);
    const double norm = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    for (auto& x : v) x /= norm;
    const double s = -(v[0] + v[1] + v[2]);  // the padding makes the mean 0 ...
    const double r = std::sqrt(4 - s * s);   // ... and the sum of squares 1 + 2 = 3
    const std::vector<double> e = {v[0], v[1], v[2], (s + r) / 2, (s - r) / 2};
    for (int k = 0; k < 5; ++k)  // TokenEmbedding multiplies by sqrt(d_model)
      model->tok_emb->weight[static_cast<int64_t>(id)][k] =
          e[static_cast<size_t>(k)] / std::sqrt(5.0);
  }
  model->pos_emb->weight.zero_();
  auto* block = model->blocks[0]->as<qkv::TransformerBlockImpl>();
  const double c_qk = std::sqrt(3 / std::sqrt(5.0));
  auto pick = torch::zeros({5, 5});
  for (int k = 0; k < 3; ++k) pick[k][k] = c_qk;
  block->attn->w_q->weight.copy_(pick);
  block->attn->w_k->weight.copy_(pick);
  block->attn->w_v->weight.copy_(torch::eye(5));
  block->attn->w_o->weight.copy_(torch::eye(5));
  return model;
}

void save_checkpoint(const std::string& path, qkv::TransformerLM& model,
                     const qkv::Tokenizer& tokenizer) {
  qkv::Config config;
  config.model = model->config();
  qkv::write_checkpoint(path, model, nullptr, config, tokenizer, {});
}

double round2(double x) {
  return std::round(x * 100) / 100;
}

TEST(AttentionCommand, ReproducesTheLectureExampleThroughTheRealModel) {
  TempDir dir("lecture");
  auto model = lecture_model();
  qkv::CharTokenizer tokenizer(kLectureVocabulary);
  save_checkpoint(dir / "lecture.pt", model, tokenizer);

  auto r = run_qkv("attention " + (dir / "lecture.pt") + " --text apdo --out " + (dir / "out"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(qkv::read_file_bytes(dir / "out/attention.json"));
  EXPECT_EQ(j["tokens"], nlohmann::json({"a", "p", "d", "o"}));
  EXPECT_EQ(j["shape"], nlohmann::json({1, 1, 4, 4}));
  const auto orange = j["weights"][0][0][3];  // "orange" attending to "an apple and orange"
  EXPECT_DOUBLE_EQ(round2(orange[0].get<double>()), 0.15);  // an
  EXPECT_DOUBLE_EQ(round2(orange[1].get<double>()), 0.30);  // apple
  EXPECT_DOUBLE_EQ(round2(orange[2].get<double>()), 0.15);  // and
  EXPECT_DOUBLE_EQ(round2(orange[3].get<double>()), 0.40);  // orange
  const auto apple = j["weights"][0][0][1];                 // "apple" may see "an" and itself only
  EXPECT_DOUBLE_EQ(apple[2].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(apple[3].get<double>(), 0.0);
  // The printed table: the same row, and the future left blank.
  EXPECT_NE(r.out.find("\no  0.15  0.30  0.15  0.40\n"), std::string::npos) << r.out;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind("p  ", 0) == 0) EXPECT_EQ(std::count(line.begin(), line.end(), '.'), 2) << line;
}

// A random model with sharpened queries, so its attention is far from uniform, and louder
// values, so what it attends to visibly moves the residual stream (at initialisation the
// attention output is ~1e-3 of the embeddings it is added to).
qkv::TransformerLM peaked_model(int64_t vocab) {
  auto model = qkv::testing::random_model(vocab, 32, 32, 11);
  torch::NoGradGuard no_grad;
  for (auto& block : *model->blocks) {
    auto& attn = block->as<qkv::TransformerBlockImpl>()->attn;
    attn->w_q->weight.mul_(40);
    attn->w_v->weight.mul_(20);
    attn->w_o->weight.mul_(50);
  }
  return model;
}

TEST(AttentionCommand, EveryRowOfEveryTableIsADistributionOverThePast) {
  TempDir dir("rows");
  qkv::CharTokenizer tokenizer(" abcdefghijklmnopqrstuvwxyz");
  auto model = peaked_model(tokenizer.vocab_size());
  save_checkpoint(dir / "m.pt", model, tokenizer);
  const std::string text = "the river bank flows";
  auto r = run_qkv("attention " + (dir / "m.pt") + " --text '" + text + "' --out " + (dir / "o"));
  ASSERT_EQ(r.exit_code, 0);
  auto j = nlohmann::json::parse(qkv::read_file_bytes(dir / "o/attention.json"));
  const size_t T = text.size();
  ASSERT_EQ(j["weights"].size(), 2u);
  double largest = 0;
  for (const auto& layer : j["weights"]) {
    ASSERT_EQ(layer.size(), 2u);
    for (const auto& head : layer) {
      ASSERT_EQ(head.size(), T);
      for (size_t i = 0; i < T; ++i) {
        double sum = 0;
        for (size_t k = 0; k < T; ++k) {
          const double w = head[i][k].get<double>();
          if (k > i) EXPECT_EQ(w, 0.0) << "query " << i << " sees future key " << k;
          EXPECT_GE(w, 0.0);
          sum += w;
          largest = std::max(largest, w);
        }
        EXPECT_NEAR(sum, 1.0, 1e-5) << "row " << i;
      }
    }
  }
  EXPECT_GT(largest, 0.5);  // not trivially uniform
  // Printed tables: 2 layers x (mean + 2 heads); row i shows i + 1 weights and nothing after.
  std::istringstream lines(r.out);
  std::string line;
  int rows = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line.rfind("layer", 0) == 0 || line.rfind("text", 0) == 0 || line[0] == ' ')
      continue;
    const auto weights = std::count(line.begin(), line.end(), '.');
    EXPECT_EQ(weights, rows % static_cast<int>(T) + 1) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 6 * static_cast<int>(T));
  // The heatmaps for each layer.
  for (const char* f : {"layer1.png", "layer1.svg", "layer2.png", "layer2.svg"})
    EXPECT_TRUE(std::filesystem::is_regular_file(dir / ("o/" + std::string(f)))) << f;
}

TEST(AttentionCommand, BadInputIsAOneLineErrorAndExitCodeOne) {
  TempDir dir("attn_bad");
  qkv::CharTokenizer tokenizer("abc ");
  auto model = qkv::testing::random_model(tokenizer.vocab_size(), 8, 16, 1);
  save_checkpoint(dir / "m.pt", model, tokenizer);
  const std::string ckpt = dir / "m.pt";
  for (const std::string& args :
       {ckpt + " --text 'abz'", ckpt + " --text ''", ckpt + " --text 'abcabcabc'",
        ckpt + " --text abc --layer 3", ckpt + " --text abc --head 5",
        (dir / "missing.pt") + " --text abc"}) {
    auto r = qkv::testing::run_command(std::string(QKV_BINARY) + " attention " + args + " --out " +
                                       (dir / "o") + " 2>&1 >/dev/null");
    EXPECT_EQ(r.exit_code, 1) << args;
    const auto errors = r.out.substr(r.out.find("error"));
    EXPECT_EQ(std::count(errors.begin(), errors.end(), '\n'), 1) << r.out;
  }
}

TEST(ContextualEmbeddings, SameTokenIsIdenticalStaticallyAndDiffersAfterAttention) {
  qkv::CharTokenizer tokenizer(" abcdefghijklmnopqrstuvwxyz");
  auto model = peaked_model(tokenizer.vocab_size());
  auto cmp = qkv::compare_contextual_embeddings(model, tokenizer,
                                                {"money bank grows", "river bank flows"}, "bank");
  ASSERT_EQ(cmp.levels.size(), 4u);  // static, + positions, layer 1, layer 2
  ASSERT_EQ(cmp.occurrences.size(), 2u);
  const auto& o = cmp.occurrences[0];
  EXPECT_EQ(o.pieces, (std::vector<std::string>{"b", "a", "n", "k"}));
  EXPECT_EQ(o.piece, "k");  // the last piece of a split word
  EXPECT_EQ(o.position, 9);
  const auto& cos = cmp.cosine[0];
  EXPECT_NEAR(cos[0], 1.0, 1e-12);  // the same token: the same static vector
  EXPECT_NEAR(cos[1], 1.0, 1e-12);  // and the same position (9 in both)
  EXPECT_LT(cos[2], 0.9999);        // after layer 1 the contexts have mixed in

  // Independently: the residual stream after layer 1 from the model's own capture, compared with
  // LibTorch's cosine_similarity in float64.
  auto level = [&](const std::string& text, bool update) {
    auto ids = tokenizer.encode(text);
    auto idx = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
    torch::NoGradGuard no_grad;
    const auto capture = model->inspect(idx);
    auto h = capture.hidden_states[0][0][9].to(torch::kFloat64);
    return update ? h - capture.input_embeddings[0][9].to(torch::kFloat64) : h;
  };
  auto reference = [&](bool update) {
    return torch::cosine_similarity(level("money bank grows", update),
                                    level("river bank flows", update), 0)
        .item<double>();
  };
  EXPECT_NEAR(cos[2], reference(false), 1e-9);
  // What layer 1 added, without the static embedding the residual stream carries along.
  EXPECT_NEAR(cmp.update_cosine[0][2], reference(true), 1e-9);
  EXPECT_LT(cmp.update_cosine[0][2], cos[2]);
  EXPECT_TRUE(std::isnan(cmp.update_cosine[0][0]) && std::isnan(cmp.update_cosine[0][1]));

  // Each occurrence lists its top 3 keys per layer, strongest first, all in its past.
  ASSERT_EQ(cmp.top_attended[0].size(), 2u);
  for (const auto& layer : cmp.top_attended[0]) {
    ASSERT_EQ(layer.size(), 3u);
    EXPECT_GE(layer[0].weight, layer[1].weight);
    EXPECT_GE(layer[1].weight, layer[2].weight);
    for (const auto& t : layer) EXPECT_LE(t.position, 9);
  }
}

TEST(ContextualEmbeddings, PositionsSeparateTheSameTokenAtDifferentPlaces) {
  qkv::CharTokenizer tokenizer(" abcdefghijklmnopqrstuvwxyz");
  auto model = peaked_model(tokenizer.vocab_size());
  auto cmp =
      qkv::compare_contextual_embeddings(model, tokenizer, {"a bank", "the big bank"}, "bank");
  EXPECT_NEAR(cmp.cosine[0][0], 1.0, 1e-12);
  EXPECT_LT(cmp.cosine[0][1], 0.9999);
}

TEST(ContextualEmbeddings, AbsentWordNamesTheSentence) {
  qkv::CharTokenizer tokenizer(" abcdefghijklmnopqrstuvwxyz");
  auto model = qkv::testing::random_model(tokenizer.vocab_size(), 32, 16, 2);
  try {
    qkv::compare_contextual_embeddings(model, tokenizer, {"money bank grows", "river banks flow"},
                                       "bank");
    FAIL() << "no error for a missing word";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("sentence 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("river banks flow"), std::string::npos) << msg;
  }
}

TEST(ContextualEmbeddings, FollowsTheLastSubwordPieceOfTheWord) {
  REQUIRE_SENTENCEPIECE_PLUGIN();
  TempDir dir("embed_spm");
  qkv::testing::write_file(dir / "corpus.txt", qkv::testing::sample_corpus());
  qkv::SentencePieceTrainOptions options;
  options.input_files = {dir / "corpus.txt"};
  options.vocab_size = 300;
  auto tok = qkv::SentencePieceTokenizer::train(options, dir.str());
  auto model = qkv::testing::random_model(tok.vocab_size(), 32, 16, 4);
  const std::vector<std::string> sentences = {"Romeo dreams of the money bank.", "The river bank."};
  auto cmp = qkv::compare_contextual_embeddings(model, tok, sentences, "bank");
  for (const auto& o : cmp.occurrences) {
    // The text up to and including the token used ends with the word: it is the last piece.
    auto ids = tok.encode(o.text);
    ids.resize(static_cast<size_t>(o.position + 1));
    const std::string upto = tok.decode(ids);
    ASSERT_GE(upto.size(), 4u);
    EXPECT_EQ(upto.substr(upto.size() - 4), "bank") << upto;
    EXPECT_EQ(o.piece, o.pieces.back());
  }
  EXPECT_NEAR(cmp.cosine[0][0], 1.0, 1e-12);
}

TEST(EmbedCommand, JsonReportsStaticOneAndContextualBelowOne) {
  TempDir dir("embed");
  qkv::CharTokenizer tokenizer(" abcdefghijklmnopqrstuvwxyz");
  auto model = peaked_model(tokenizer.vocab_size());
  save_checkpoint(dir / "m.pt", model, tokenizer);
  auto r = run_qkv("embed " + (dir / "m.pt") +
                   " --text 'money bank grows' --text 'river bank flows' --text 'a bank' "
                   "--word bank --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["pairs"].size(), 3u);  // 1-2, 1-3, 2-3
  for (const auto& pair : j["pairs"]) {
    EXPECT_NEAR(pair["cosine"][0].get<double>(), 1.0, 1e-9);
    EXPECT_LT(pair["cosine"][2].get<double>(), 0.9999);
    EXPECT_TRUE(pair["update_cosine"][0].is_null());
    EXPECT_LT(pair["update_cosine"][2].get<double>(), 1.0);
  }
  EXPECT_EQ(j["occurrences"][2]["position"], 5);
  EXPECT_EQ(j["occurrences"][0]["top_attended"][0].size(), 3u);
}

}  // namespace
