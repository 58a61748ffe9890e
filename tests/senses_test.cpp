// The contextual-embedding lesson's parts: the word tokenizer, the generated corpus, the
// statistics of the sense probe (against values worked out by hand) and `qkv embed --senses`.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "qkv/data/sense_corpus.h"
#include "qkv/inspect/sense_probe.h"
#include "qkv/tokenizer/word_tokenizer.h"
#include "qkv/train/checkpoint.h"
#include "test_support.h"

namespace {

using qkv::testing::TempDir;

// --- the word tokenizer ---------------------------------------------------------------------

TEST(WordTokenizer, OneTokenPerWordWithItsSpacesAndTextComesBackByteForByte) {
  const std::string text = "the money  bank pays .\nmy bank \n";
  std::vector<std::string> pieces;
  for (auto p : qkv::WordTokenizer::split(text)) pieces.emplace_back(p);
  EXPECT_EQ(pieces, (std::vector<std::string>{"the", " money", "  bank", " pays", " .", "\n", "my",
                                              " bank", " ", "\n"}));
  qkv::WordTokenizer::VocabularyBuilder builder;
  builder.add(text);
  const auto tok = builder.build();
  EXPECT_EQ(tok.vocab_size(), 9);  // " bank" twice
  const auto ids = tok.encode(text);
  EXPECT_EQ(ids.size(), 10u);
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.piece(ids[1]), " money");
  const auto again = qkv::load_tokenizer("word", tok.serialize());
  EXPECT_EQ(again->encode(text), ids);
  try {
    tok.encode("the river bank");
    ADD_FAILURE() << "an unknown word was encoded";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "' river' at byte 3 is not in the word vocabulary");
  }
  EXPECT_THROW(qkv::WordTokenizer({"a b"}), std::invalid_argument);  // two words
  EXPECT_THROW(qkv::WordTokenizer({"a", "a"}), std::invalid_argument);
  EXPECT_THROW(qkv::WordTokenizer::deserialize(std::string("a\0b", 3)), std::invalid_argument);
}

// --- the generated corpus -------------------------------------------------------------------

TEST(SenseCorpus, IsTheSameForASeedAndKeepsTheHeldOutWordsAwayFromTheAmbiguousOnes) {
  const auto a = qkv::make_sense_corpus(7, 4000), b = qkv::make_sense_corpus(7, 4000);
  EXPECT_EQ(a.corpus, b.corpus);
  EXPECT_EQ(a.probe, b.probe);
  EXPECT_NE(qkv::make_sense_corpus(8, 4000).corpus, a.corpus);

  std::set<std::string> ambiguous, held_out;
  for (const auto& w : qkv::lecture_ambiguous_words()) {
    ambiguous.insert(w.word);
    for (const auto& s : w.senses) held_out.insert(s.held_out.begin(), s.held_out.end());
  }
  std::istringstream lines(a.corpus);
  int with_word = 0, held_out_taught = 0, n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    std::istringstream words(line);
    std::vector<std::string> w{std::istream_iterator<std::string>(words), {}};
    ASSERT_GE(w.size(), 5u) << line;
    EXPECT_EQ(w.back(), ".");
    for (size_t i = 0; i < w.size(); ++i)  // an ambiguous word only ever third
      if (ambiguous.count(w[i])) EXPECT_EQ(i, 2u) << line;
    if (ambiguous.count(w[2])) {
      ++with_word;
      EXPECT_EQ(held_out.count(w[1]), 0u) << line;  // never after a held-out context word
    }
    held_out_taught += held_out.count(w[1]) > 0;
  }
  EXPECT_EQ(n, 4000);
  EXPECT_EQ(with_word, 2000);
  EXPECT_GT(held_out_taught, 100);  // but the held-out words are taught
  // The probe: 5 words x 2 senses x 2 held-out words x 4 determiners, the word third.
  std::istringstream probe(a.probe);
  int probes = 0;
  for (std::string line; std::getline(probe, line); ++probes) {
    const auto word = line.substr(0, line.find('\t'));
    EXPECT_TRUE(ambiguous.count(word)) << line;
    const auto sentence = line.substr(line.rfind('\t') + 1);
    std::istringstream ws(sentence);
    std::vector<std::string> w{std::istream_iterator<std::string>(ws), {}};
    EXPECT_EQ(w[2], word);
    EXPECT_TRUE(held_out.count(w[1])) << line;
  }
  EXPECT_EQ(probes, 80);
}

// --- the statistics, by hand ------------------------------------------------------------------

// Sense 0 at (1,0) and (3,0), sense 1 at (1,2) and (3,2), all at one position. Centred (mean
// (2,1) removed): (-1,-1), (1,-1), (-1,1), (1,1). Within a sense the distances are 2 and 2;
// between, 2, 2 sqrt 2, 2 sqrt 2, 2: ratio (1 + sqrt 2) / 2. Left out, (-1,-1) is 2 from its
// sense's other vector and sqrt 5 from the other sense's centroid (0,1): all four right. Centred
// cosines: within 0 and 0; between 0, -1, -1, 0. Raw: within 1 and 7 / sqrt 65; between
// 1 / sqrt 5, 3 / sqrt 13, 1 / sqrt 5, 3 / sqrt 13.
TEST(SenseSeparation, EqualsTheValuesWorkedOutByHand) {
  const auto v = torch::tensor({1.0, 0.0, 3.0, 0.0, 1.0, 2.0, 3.0, 2.0}).reshape({4, 2});
  const std::vector<int> sense = {0, 0, 1, 1};
  const std::vector<int64_t> position = {2, 2, 2, 2};
  const auto m = qkv::measure_sense_separation(v, sense, position);
  EXPECT_NEAR(m.distance_ratio, (1 + std::sqrt(2.0)) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(m.nearest_centroid_accuracy, 1.0);
  EXPECT_NEAR(m.cosine_within, 0.0, 1e-12);
  EXPECT_NEAR(m.cosine_between, -0.5, 1e-12);
  EXPECT_NEAR(m.raw_cosine_within, (1 + 7 / std::sqrt(65.0)) / 2, 1e-12);
  EXPECT_NEAR(m.raw_cosine_between, (2 / std::sqrt(5.0) + 6 / std::sqrt(13.0)) / 4, 1e-12);

  // A component all four share (the positional code, say) moves the raw cosines toward 1 and
  // nothing centred.
  const auto shifted = v + torch::tensor({100.0, -50.0});
  const auto s = qkv::measure_sense_separation(shifted, sense, position);
  EXPECT_NEAR(s.distance_ratio, m.distance_ratio, 1e-9);
  EXPECT_NEAR(s.cosine_between, m.cosine_between, 1e-9);
  EXPECT_GT(s.raw_cosine_between, 0.999);

  // Leave-one-out can fail: a sense-1 vector nearer sense 0's centroid.
  const auto mixed = torch::tensor({0.0, 0.0, 1.0, 0.0, 0.2, 0.0, 9.0, 0.0}).reshape({4, 2});
  // Left out, (0.2,0) [sense 1] is 8.8 from (9,0) and 0.3 from sense 0's (0.5,0): wrong;
  // (9,0) is 8.8 from (0.2,0) and 8.5 from (0.5,0): wrong; sense 0's are right (1 from each
  // other; from sense 1's (4.6,0): 4.6 and 3.6). Two of four.
  EXPECT_DOUBLE_EQ(qkv::measure_sense_separation(mixed, sense, position).nearest_centroid_accuracy,
                   0.5);
  EXPECT_THROW(qkv::measure_sense_separation(v, {0, 1, 1, 1}, position), std::invalid_argument);
}

TEST(SenseSeparation, ThePlaneHoldsThePrincipalAxes) {
  // Spread 3 along the first axis, 1 along the second, none along the third.
  const auto v = torch::tensor({3.0, 1.0, 5.0, 3.0, -1.0, 5.0, -3.0, 1.0, 5.0, -3.0, -1.0, 5.0})
                     .reshape({4, 3});
  const auto m = qkv::measure_sense_separation(v, {0, 0, 1, 1}, {0, 0, 0, 0});
  ASSERT_EQ(m.pca.sizes(), (std::vector<int64_t>{4, 2}));
  EXPECT_TRUE(torch::allclose(m.pca.select(1, 0).abs(), torch::full({4}, 3.0, torch::kFloat64)));
  EXPECT_TRUE(torch::allclose(m.pca.select(1, 1).abs(), torch::full({4}, 1.0, torch::kFloat64)));
}

TEST(SenseProbeFile, ReadsBothFormsAndNamesTheLineOfNeither) {
  TempDir dir("sense_file");
  qkv::testing::write_file(dir / "p.tsv",
                           "bank\tmoney\tthe cash bank pays\napple\tfruit\ta ripe apple\n"
                           "bank\triver\tthe river bank floods\n");
  const auto bank = qkv::read_sense_sentences(dir / "p.tsv", "bank");
  ASSERT_EQ(bank.size(), 2u);
  EXPECT_EQ(bank[1].sense, "river");
  EXPECT_EQ(bank[1].text, "the river bank floods");
  qkv::testing::write_file(dir / "two.tsv", "money\tthe cash bank\nriver\tthe river bank\n");
  EXPECT_EQ(qkv::read_sense_sentences(dir / "two.tsv", "bank").size(), 2u);
  qkv::testing::write_file(dir / "bad.tsv", "money\tthe cash bank\njust text\n");
  try {
    qkv::read_sense_sentences(dir / "bad.tsv", "bank");
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "bad.tsv:2: expected SENSE<TAB>SENTENCE"),
              std::string::npos)
        << e.what();
  }
}

// --- the command, on a briefly trained model ----------------------------------------------------

TEST(EmbedSensesCommand, ReportsEveryLevelAndDrawsThePlanes) {
  TempDir dir("embed_senses");
  auto r = qkv::testing::run_qkv("train " + std::string(QKV_SOURCE_DIR) + "/configs/tiny.yaml" +
                                 " --set tokenizer.kind=word --set data.generate=senses" +
                                 " --set data.files=" + (dir / "corpus.txt") + " --set data.dir=" +
                                 (dir / "data") + " --set train.out_dir=" + (dir / "run") +
                                 " --set train.max_steps=30 --set model.block_size=12");
  ASSERT_EQ(r.exit_code, 0);
  ASSERT_TRUE(std::filesystem::exists(dir / "corpus.probe.tsv"));
  r = qkv::testing::run_qkv("embed " + (dir / "run") + " --senses " + (dir / "corpus.probe.tsv") +
                            " --word bank --json --out " + (dir / "planes"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["senses"], (nlohmann::json{"money", "river"}));
  EXPECT_TRUE(j["same_position"].get<bool>());
  ASSERT_EQ(j["levels"].size(), 2u + 2u + 1u);  // static, + positions, 2 layers, final norm
  for (const auto& level : j["levels"]) {
    const double a = level["nearest_centroid_accuracy"].get<double>();
    EXPECT_TRUE(a >= 0 && a <= 1) << level;
  }
  // The static embedding is one vector for every sentence: no sense can show there.
  EXPECT_NEAR(j["levels"][0]["raw_cosine_between"].get<double>(), 1.0, 1e-9);
  EXPECT_TRUE(std::filesystem::exists(dir / "planes/bank_pca_layer2.png"));
  EXPECT_TRUE(std::filesystem::exists(dir / "planes/bank_pca_final_norm.svg"));
  EXPECT_EQ(j["images"].size(), 2u * 5u);
}

}  // namespace
