// Tokenizers: round trips, vocabularies, errors; SHA-256 against published vectors.
#include <gtest/gtest.h>

#include <random>

#include "qkv/io/sha256.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "qkv/tokenizer/sentencepiece_tokenizer.h"
#include "test_support.h"

namespace {

using qkv::CharTokenizer;
using qkv::SentencePieceTokenizer;

TEST(CharTokenizer, VocabularyIsTheSortedCharactersAndRoundTrips) {
  const std::string text = "héllo wörld\nzebra → αβγ";
  CharTokenizer::VocabularyBuilder builder;
  builder.add(text);
  CharTokenizer tok = builder.build();
  // Distinct code points: newline, space, a b d e h l o r w z, é ö α β γ, →
  EXPECT_EQ(tok.vocab_size(), 18);
  EXPECT_EQ(tok.piece(0), "\n");
  EXPECT_EQ(tok.piece(1), " ");
  EXPECT_EQ(tok.piece(2), "a");
  EXPECT_EQ(tok.piece(17), "→");  // U+2192 sorts last
  auto ids = tok.encode(text);
  EXPECT_EQ(ids.size(), 23u);  // characters, not bytes
  EXPECT_EQ(tok.decode(ids), text);
  // Saved and loaded, it is the same tokenizer.
  auto again = qkv::load_tokenizer("char", tok.serialize());
  EXPECT_EQ(again->encode(text), ids);
}

TEST(CharTokenizer, UnknownCharacterNamesItAndItsPosition) {
  CharTokenizer tok("abc ");
  try {
    tok.encode("ab ca!");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "character '!' (U+0021) at position 5 is not in the tokenizer's vocabulary");
  }
  EXPECT_THROW(tok.encode("aé"), std::invalid_argument);
  EXPECT_THROW(tok.decode({7}), std::out_of_range);
}

TEST(CharTokenizer, StartIdIsNewlineWhenPresent) {
  EXPECT_EQ(CharTokenizer("\nab").start_id(), 0);
  EXPECT_EQ(CharTokenizer("ab\xC3\xA9").start_id(), 0);  // no newline: id 0
  EXPECT_EQ(CharTokenizer(" \nab").start_id(), 1);
}

TEST(SentencePieceTokenizer, TrainsBpeInProcessAndRoundTripsTheCorpus) {
  REQUIRE_SENTENCEPIECE_PLUGIN();
  qkv::testing::TempDir dir("spm");
  const std::string corpus = qkv::testing::sample_corpus() + "Ünïcödé and digits 12345\n";
  qkv::testing::write_file(dir / "corpus.txt", corpus);
  qkv::SentencePieceTrainOptions options;
  options.input_files = {dir / "corpus.txt"};
  options.vocab_size = 400;  // byte fallback reserves 256 of them for the bytes
  auto tok = SentencePieceTokenizer::train(options, dir.str());
  EXPECT_EQ(tok.vocab_size(), 400);
  EXPECT_EQ(tok.special_ids().bos, 1);
  auto ids = tok.encode(corpus);
  EXPECT_LT(ids.size(), corpus.size() / 2);  // subwords: far fewer tokens than characters
  EXPECT_EQ(tok.decode(ids), corpus);
  // Text it never saw, with a character outside its vocabulary: byte fallback keeps it exact.
  const std::string unseen = "Zebras 🦓 weep\n";
  EXPECT_EQ(tok.decode(tok.encode(unseen)), unseen);

  // The .model file it wrote loads as the same tokenizer; so do the serialized bytes.
  auto from_file = SentencePieceTokenizer::load_model_file(dir / "sentencepiece.model");
  EXPECT_EQ(from_file.encode(corpus), ids);
  auto from_bytes = qkv::load_tokenizer("sentencepiece", tok.serialize());
  EXPECT_EQ(from_bytes->encode(corpus), ids);
}

TEST(SentencePieceTokenizer, UnigramModelsTrainToo) {
  REQUIRE_SENTENCEPIECE_PLUGIN();
  qkv::testing::TempDir dir("spm_unigram");
  qkv::testing::write_file(dir / "corpus.txt", qkv::testing::sample_corpus());
  qkv::SentencePieceTrainOptions options;
  options.input_files = {dir / "corpus.txt"};
  options.vocab_size = 60;
  options.byte_fallback = false;
  options.model_type = "unigram";
  auto tok = SentencePieceTokenizer::train(options, dir.str());
  const std::string line = "The king loves the crown of England.\n";
  EXPECT_EQ(tok.decode(tok.encode(line)), line);
}

TEST(SentencePieceTokenizer, GarbageModelIsAClearError) {
  REQUIRE_SENTENCEPIECE_PLUGIN();
  EXPECT_THROW(SentencePieceTokenizer("not a model"), std::invalid_argument);
  EXPECT_THROW(SentencePieceTokenizer::load_model_file("/nonexistent.model"),
               std::invalid_argument);
}

TEST(Sha256, MatchesPublishedVectors) {
  for (bool cpu_extensions : {false, true}) {  // the portable code and the x86 SHA instructions
    auto hash = [&](const std::string& s) {
      qkv::Sha256 sha(cpu_extensions);
      sha.update(s);
      return sha.hex_digest();
    };
    EXPECT_EQ(hash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    // Fed in pieces that straddle block boundaries, the digest is the same.
    qkv::Sha256 pieces(cpu_extensions);
    std::string million(1000000, 'a');
    for (size_t i = 0; i < million.size(); i += 997)
      pieces.update(std::string_view(million).substr(i, 997));
    EXPECT_EQ(pieces.hex_digest(),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  }
}

TEST(Sha256, CpuExtensionsAgreeWithThePortableCodeAtEveryLength) {
  if (!qkv::Sha256::cpu_extensions_available())
    GTEST_SKIP() << "this CPU has no SHA extensions: only the portable code runs";
  std::mt19937 rng(5);
  std::string data(5000, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  for (size_t n = 0; n <= data.size(); n += (n < 300 ? 1 : 97)) {
    qkv::Sha256 fast(true), portable(false);
    fast.update(std::string_view(data).substr(0, n / 2));  // in two pieces, for the buffer path
    fast.update(std::string_view(data).substr(n / 2, n - n / 2));
    portable.update(std::string_view(data).substr(0, n));
    ASSERT_EQ(fast.hex_digest(), portable.hex_digest()) << n << " bytes";
  }
}

}  // namespace

namespace {

// Each character has one UTF-8 spelling. Overlong forms (C1 85 spells 'E' again), surrogates and
// code points past U+10FFFF are refused; before, the last indexed past the vocabulary builder's
// table (found by fuzz/tokenizer_fuzz.cpp).
TEST(CharTokenizer, RefusesWhatIsNotUTF8) {
  for (const char* bad : {"\xc1\x85", "\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80",
                          "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf7\xbf\xbf\xbf"}) {
    EXPECT_THROW(qkv::CharTokenizer{std::string(bad)}, std::invalid_argument) << bad;
    qkv::CharTokenizer::VocabularyBuilder builder;
    EXPECT_THROW(builder.add(bad), std::invalid_argument) << bad;
  }
  // The largest and smallest of each length still are characters.
  const std::string edges =
      "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf";
  EXPECT_EQ(qkv::CharTokenizer(edges).vocab_size(), 7);
  EXPECT_EQ(qkv::CharTokenizer(edges).serialize(), edges);
}

}  // namespace
