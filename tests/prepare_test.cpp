// Data preparation: token files, splits, dtypes, up-to-date detection; batches.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qkv/data/batch_sampler.h"
#include "qkv/data/data_preparer.h"
#include "qkv/data/parallel_encoder.h"
#include "qkv/io/file_bytes.h"
#include "qkv/io/sha256.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "qkv/tokenizer/sentencepiece_tokenizer.h"
#include "test_support.h"

namespace {

using qkv::testing::TempDir;

std::vector<int32_t> read_all(const std::string& path, qkv::TokenDtype dtype) {
  qkv::TokenFile f(path, dtype);
  std::vector<int32_t> out(f.size());
  for (int64_t i = 0; i < f.size(); ++i) out[i] = static_cast<int32_t>(f.at(i));
  return out;
}

TEST(Prepare, CharCorpusSplitsRoundTripsAndIsUpToDateTheSecondTime) {
  TempDir dir("prepare_char");
  const std::string corpus = qkv::testing::sample_corpus(300);
  qkv::testing::write_file(dir / "corpus.txt", corpus);
  auto config = qkv::testing::tiny_config(dir);

  auto first = qkv::prepare_data(config);
  EXPECT_FALSE(first.up_to_date);
  const auto& meta = first.meta;
  EXPECT_EQ(meta.dtype, qkv::TokenDtype::kUInt16);
  // Split: the last 20% of the bytes (ASCII here, so of the characters), as nanoGPT cuts it.
  const auto split = static_cast<size_t>(corpus.size() * 0.8);
  EXPECT_EQ(meta.train_tokens, static_cast<int64_t>(split));
  EXPECT_EQ(meta.val_tokens, static_cast<int64_t>(corpus.size() - split));
  auto tok = meta.load_tokenizer();
  EXPECT_EQ(tok->decode(read_all(meta.train_path(), meta.dtype)), corpus.substr(0, split));
  EXPECT_EQ(tok->decode(read_all(meta.val_path(), meta.dtype)), corpus.substr(split));

  std::ifstream in(meta.dir + "/meta.json");
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["sources"][0]["sha256"], qkv::Sha256::of_file(dir / "corpus.txt"));
  EXPECT_EQ(j["sources"][0]["size"], static_cast<int64_t>(corpus.size()));
  EXPECT_EQ(j["dtype"], "uint16");

  EXPECT_TRUE(qkv::prepare_data(config).up_to_date);
  // A changed source is noticed by content, even at the same size.
  std::string changed = corpus;
  changed[10] = changed[10] == 'x' ? 'y' : 'x';
  qkv::testing::write_file(dir / "corpus.txt", changed);
  EXPECT_FALSE(qkv::prepare_data(config).up_to_date);
  // So is a changed tokenizer setting.
  auto other = qkv::testing::tiny_config(dir, {"data.val_fraction=0.3"});
  EXPECT_FALSE(qkv::prepare_data(other).up_to_date);
}

TEST(Prepare, ACorpusThatChangesWhileItIsReadIsRefusedAndLeftUnprepared) {
  TempDir dir("prepare_changing");
  qkv::testing::write_file(dir / "corpus.txt", qkv::testing::sample_corpus(300));
  auto config = qkv::testing::tiny_config(dir);
  // Grown, then rewritten at the same size, as the encoder reads it (its first progress report).
  for (const bool same_size : {false, true}) {
    bool changed = false;
    const auto change = [&](int64_t, int64_t) {
      if (changed) return;
      changed = true;
      std::string text = qkv::read_file_bytes(dir / "corpus.txt");
      if (same_size)
        text[5] = text[5] == 'x' ? 'y' : 'x';
      else
        text += "More lines.\n";
      qkv::testing::write_file(dir / "corpus.txt", text);
    };
    try {
      qkv::prepare_data(config, change);
      FAIL() << "no error";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_NE(
          what.find("data.files: " + (dir / "corpus.txt") + " changed while it was being prepared"),
          std::string::npos)
          << what;
      EXPECT_NE(what.find(same_size ? "its contents changed" : " bytes, now "), std::string::npos)
          << what;
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "data/meta.json"));
    EXPECT_FALSE(std::filesystem::exists(dir / "data/train.bin"));
  }
  // Left alone, the same corpus prepares.
  EXPECT_FALSE(qkv::prepare_data(config).up_to_date);
}

TEST(Prepare, TwoPreparersOfOneDirectoryBothSucceedWithTheSameFiles) {
  TempDir dir("prepare_race");
  qkv::testing::write_file(dir / "corpus.txt", qkv::testing::sample_corpus(60000));  // ~2.5 MB
  const std::string args = "prepare " + std::string(QKV_SOURCE_DIR) +
                           "/configs/tiny.yaml --set data.files=" + (dir / "corpus.txt");
  for (int trial = 0; trial < 3; ++trial) {
    const std::string data = dir / ("data" + std::to_string(trial));
    const auto both = qkv::testing::run_command(
        "(" + std::string(QKV_BINARY) + " " + args + " --set data.dir=" + data +
        " > /dev/null 2>&1; echo \"first $?\") & (" + QKV_BINARY + " " + args +
        " --set data.dir=" + data + " > /dev/null 2>&1; echo \"second $?\") & wait");
    EXPECT_NE(both.out.find("first 0"), std::string::npos) << both.out;
    EXPECT_NE(both.out.find("second 0"), std::string::npos) << both.out;
    const auto meta = qkv::DatasetMeta::load(data);
    // ASCII, one token a byte: every byte of the corpus is in the two files.
    EXPECT_EQ(meta.train_tokens + meta.val_tokens,
              static_cast<int64_t>(std::filesystem::file_size(dir / "corpus.txt")));
    EXPECT_NO_THROW(meta.open_checked("train"));
    EXPECT_NO_THROW(meta.open_checked("val"));
  }
}

TEST(Prepare, LargeVocabularyUsesUint32) {
  EXPECT_EQ(qkv::dtype_for_vocab(65536), qkv::TokenDtype::kUInt16);
  EXPECT_EQ(qkv::dtype_for_vocab(65537), qkv::TokenDtype::kUInt32);
  TempDir dir("prepare_u32");
  // 70,000 distinct code points (CJK and beyond) make a char vocabulary too big for uint16.
  std::string corpus;
  for (uint32_t cp = 0x4E00; cp < 0x4E00 + 70000; ++cp) {
    if (cp >= 0xD800 && cp < 0xE000) continue;  // surrogates are not characters
    corpus += qkv::encode_utf8(cp);
    if (cp % 64 == 0) corpus += '\n';
  }
  qkv::testing::write_file(dir / "corpus.txt", corpus);
  auto result = qkv::prepare_data(qkv::testing::tiny_config(dir));
  EXPECT_GT(result.meta.vocab_size, 65536);
  EXPECT_EQ(result.meta.dtype, qkv::TokenDtype::kUInt32);
  auto tok = result.meta.load_tokenizer();
  auto text = tok->decode(read_all(result.meta.train_path(), result.meta.dtype)) +
              tok->decode(read_all(result.meta.val_path(), result.meta.dtype));
  EXPECT_EQ(text, corpus);
}

TEST(Prepare, SentencePieceCorpusRoundTrips) {
  REQUIRE_SENTENCEPIECE_PLUGIN();
  TempDir dir("prepare_spm");
  const std::string corpus = qkv::testing::sample_corpus(400);
  qkv::testing::write_file(dir / "corpus.txt", corpus);
  auto config =
      qkv::testing::tiny_config(dir, {"tokenizer.kind=sentencepiece", "tokenizer.vocab_size=100",
                                      "tokenizer.byte_fallback=false"});
  auto result = qkv::prepare_data(config);
  EXPECT_EQ(result.meta.tokenizer_kind, "sentencepiece");
  EXPECT_EQ(result.meta.vocab_size, 100);
  auto tok = result.meta.load_tokenizer();
  auto text = tok->decode(read_all(result.meta.train_path(), result.meta.dtype)) +
              tok->decode(read_all(result.meta.val_path(), result.meta.dtype));
  EXPECT_EQ(text, corpus);
  EXPECT_LT(result.meta.train_tokens + result.meta.val_tokens,
            static_cast<int64_t>(corpus.size()) / 2);
  EXPECT_TRUE(qkv::prepare_data(config).up_to_date);
}

TEST(Prepare, MissingCorpusIsNamed) {
  TempDir dir("prepare_missing");
  auto config = qkv::testing::tiny_config(dir);
  try {
    qkv::prepare_data(config);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no file matches '" + (dir / "corpus.txt") + "'"),
              std::string::npos);
  }
}

// Chunks of ~100 bytes over 3 threads: the ids arrive in the file's order and equal those of
// encoding the same range on one thread, whole.
void expect_parallel_equals_whole(const qkv::Tokenizer& tok, const std::string& path,
                                  const std::string& text) {
  const int64_t begin = 37, end = int64_t(text.size()) - 11;
  std::vector<qkv::TokenId> ids;
  int64_t bytes = 0;
  qkv::ParallelEncoderOptions options;
  options.threads = 3;
  options.chunk_bytes = 100;
  int chunks = 0;
  qkv::encode_file_in_parallel(tok, path, begin, end, options,
                               [&](const std::vector<qkv::TokenId>& part, int64_t n) {
                                 ids.insert(ids.end(), part.begin(), part.end());
                                 bytes += n;
                                 ++chunks;
                               });
  EXPECT_GT(chunks, 20);
  EXPECT_EQ(bytes, end - begin);
  // The reference encodes line by line: the pieces never cross a newline.
  std::vector<qkv::TokenId> expected;
  const std::string range = text.substr(begin, end - begin);
  for (size_t at = 0; at < range.size();) {
    size_t nl = range.find('\n', at);
    size_t stop = nl == std::string::npos ? range.size() : nl + 1;
    auto line = tok.encode(range.substr(at, stop - at));
    expected.insert(expected.end(), line.begin(), line.end());
    at = stop;
  }
  EXPECT_EQ(ids, expected);
}

TEST(ParallelEncoder, KeepsTheFilesOrderOverThreads) {
  TempDir dir("parallel_encoder");
  const std::string text = qkv::testing::sample_corpus(300);
  qkv::testing::write_file(dir / "corpus.txt", text);
  qkv::CharTokenizer::VocabularyBuilder vocab;
  vocab.add(text);
  expect_parallel_equals_whole(vocab.build(), dir / "corpus.txt", text);
}

TEST(ParallelEncoder, KeepsTheFilesOrderWithSentencePiece) {
  REQUIRE_SENTENCEPIECE_PLUGIN();
  TempDir dir("parallel_encoder_spm");
  const std::string text = qkv::testing::sample_corpus(300);
  qkv::testing::write_file(dir / "corpus.txt", text);
  qkv::SentencePieceTrainOptions options;
  options.input_files = {dir / "corpus.txt"};
  options.vocab_size = 300;
  expect_parallel_equals_whole(qkv::SentencePieceTokenizer::train(options, dir.str()),
                               dir / "corpus.txt", text);
}

TEST(ParallelEncoder, AnErrorInAWorkerNamesTheFile) {
  TempDir dir("parallel_encoder_error");
  std::string text = qkv::testing::sample_corpus(100);
  text.insert(text.size() / 2, "#");  // not in the vocabulary built from the clean corpus
  qkv::testing::write_file(dir / "corpus.txt", text);
  qkv::CharTokenizer::VocabularyBuilder vocab;
  vocab.add(qkv::testing::sample_corpus(100));
  qkv::ParallelEncoderOptions options;
  options.threads = 2;
  options.chunk_bytes = 64;
  int64_t delivered = 0;
  try {
    qkv::encode_file_in_parallel(vocab.build(), dir / "corpus.txt", 0, int64_t(text.size()),
                                 options, [&](const auto&, int64_t n) { delivered += n; });
    FAIL() << "encoded a character outside the vocabulary";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "corpus.txt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'#'"), std::string::npos) << e.what();
  }
  EXPECT_LT(delivered, int64_t(text.size()) / 2 + 1);  // nothing after the bad chunk
}

TEST(BatchSampler, WindowsAreShiftedPairsAndDeterministicFromSeedAndState) {
  TempDir dir("sampler");
  std::vector<int32_t> ids(1000);
  for (int i = 0; i < 1000; ++i) ids[i] = i % 500;
  {
    qkv::TokenFileWriter w(dir / "t.bin", qkv::TokenDtype::kUInt16);
    w.append(ids);
    w.finish();
  }
  auto file = std::make_shared<qkv::TokenFile>(dir / "t.bin", qkv::TokenDtype::kUInt16);
  qkv::BatchSampler a(file, 4, 8, 123), b(file, 4, 8, 123), other_rank(file, 4, 8, 123, 1, 2);
  auto x = a.next();
  ASSERT_EQ(x.x.sizes(), torch::IntArrayRef({4, 8}));
  EXPECT_TRUE(torch::equal(x.x.slice(1, 1), x.y.slice(1, 0, 7)));  // targets = inputs shifted
  EXPECT_TRUE(torch::equal(((x.x + 1) % 500), x.y));               // and they are the next tokens
  EXPECT_TRUE(torch::equal(x.x, b.next().x));
  EXPECT_FALSE(torch::equal(x.x, other_rank.next().x));
  const auto state = a.state();
  auto next1 = a.next();
  b.next();
  b.set_state(state);
  EXPECT_TRUE(torch::equal(next1.x, b.next().x));
  EXPECT_THROW(qkv::BatchSampler(file, 1, 1000, 0), std::invalid_argument);  // file too short
}

}  // namespace
