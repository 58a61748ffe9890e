// GPT-2's byte-level BPE: its byte table and merge order against hand-worked values, its
// pre-tokenizer's boundaries, refusals, and Hugging Face `tokenizers` on 120 KB of varied text.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "qkv/io/file_bytes.h"
#include "qkv/tokenizer/byte_level_bpe_tokenizer.h"
#include "test_support.h"

namespace {

using qkv::ByteLevelBpeTokenizer;
using qkv::testing::TempDir;

// vocab.json with the 256 byte symbols (ids 0..255 in byte order), then `extra` from id 256.
std::string vocab_with(const std::vector<std::string>& extra) {
  nlohmann::json v;
  const auto& bytes = ByteLevelBpeTokenizer::byte_symbols();
  for (int b = 0; b < 256; ++b) v[bytes[b]] = b;
  for (size_t i = 0; i < extra.size(); ++i) v[extra[i]] = 256 + i;
  return v.dump();
}

TEST(ByteLevelBpe, TheByteTableIsGpt2s) {
  const auto& s = ByteLevelBpeTokenizer::byte_symbols();
  EXPECT_EQ(s['A'], "A");
  EXPECT_EQ(s['~'], "~");
  EXPECT_EQ(s[' '], "\u0120");   // Ġ: the 33rd non-printable byte, 256 + 32
  EXPECT_EQ(s['\n'], "\u010a");  // Ċ: 256 + 10
  EXPECT_EQ(s['\t'], "\u0109");  // ĉ
  EXPECT_EQ(s[0], "\u0100");
  EXPECT_EQ(s[0x7f], "\u0121");  // DEL follows the 33 control bytes and space
  EXPECT_EQ(s[0xad], "\u0143");  // the soft hyphen is the last non-printable byte
  EXPECT_EQ(s[0xe9], "\u00e9");
  std::set<std::string> distinct(s.begin(), s.end());
  EXPECT_EQ(distinct.size(), 256u);
}

TEST(ByteLevelBpe, TheLowestRankedPairMergesFirst) {
  const std::string vocab = vocab_with({"he", "\u0120t", "\u0120the", "th"});
  // "h e" outranks "t h": "the" is t + he; " the" merges all the way.
  auto t = ByteLevelBpeTokenizer::from_files(
      vocab, "#version: 0.2\nh e\n\u0120 t\n\u0120t he\nt h\n", "test");
  EXPECT_EQ(t.encode(" the"), (std::vector<qkv::TokenId>{258}));
  EXPECT_EQ(t.encode("the"), (std::vector<qkv::TokenId>{'t', 256}));
  // With "t h" first, "the" is th + e.
  auto u = ByteLevelBpeTokenizer::from_files(vocab, "t h\nh e\n\u0120 t\n\u0120t he\n", "test");
  EXPECT_EQ(u.encode("the"), (std::vector<qkv::TokenId>{259, 'e'}));
  EXPECT_EQ(u.decode(u.encode(" the the")), " the the");
}

TEST(ByteLevelBpe, PreTokensFollowGpt2sPattern) {
  // "Ġ Ġ" can join two spaces only inside one pre-token: a run of spaces before a word leaves
  // its last space to the word; a run before a newline or the end is one pre-token.
  auto t = ByteLevelBpeTokenizer::from_files(vocab_with({"\u0120\u0120", "'m", "\u0120b"}),
                                             "\u0120 \u0120\n' m\n\u0120 b\n", "test");
  EXPECT_EQ(t.encode("a  b"), (std::vector<qkv::TokenId>{'a', ' ', 258}));
  EXPECT_EQ(t.encode("a  \n"), (std::vector<qkv::TokenId>{'a', 256, '\n'}));
  // A contraction is its own pre-token; an apostrophe elsewhere is a symbol like any other.
  EXPECT_EQ(t.encode("I'm"), (std::vector<qkv::TokenId>{'I', 257}));
  EXPECT_EQ(t.encode("I'mb"), (std::vector<qkv::TokenId>{'I', 257, 'b'}));
}

TEST(ByteLevelBpe, AnyUtf8RoundTripsAndOtherBytesAreRefusedNamingTheByte) {
  auto t = ByteLevelBpeTokenizer::from_files(vocab_with({"<|endoftext|>"}), "", "test");
  const std::string text = "Straße 東京 🙂\t\r\n  x<|endoftext|>y <|end";
  const auto ids = t.encode(text);
  EXPECT_EQ(t.decode(ids), text);
  EXPECT_NE(std::find(ids.begin(), ids.end(), 256), ids.end());  // the special token, whole
  EXPECT_EQ(t.special_ids().eos, 256);
  EXPECT_EQ(t.start_id(), 256);
  try {
    t.encode(std::string("ok \xff"));
    ADD_FAILURE() << "invalid UTF-8 was encoded";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("not UTF-8 at byte 3"), std::string::npos) << e.what();
  }
  const auto again = qkv::load_tokenizer("bpe", t.serialize());
  EXPECT_EQ(again->encode(text), ids);
  EXPECT_EQ(again->piece(' '), " ");
}

TEST(ByteLevelBpe, FilesThatCannotBeReadAsGpt2sAreRefusedNamingWhat) {
  const std::string vocab = vocab_with({"ab"});
  const std::vector<std::pair<std::pair<std::string, std::string>, std::string>> cases = {
      {{"{", ""}, "vocab.json is not JSON"},
      {{"[1]", ""}, "must be an object"},
      {{R"({"a": 0})", ""}, "no id for the byte symbol"},
      {{vocab, "a b c\n"}, "merges.txt line 1: expected two symbols"},
      {{vocab, "a b\nb c\n"}, "merges.txt line 2: 'b c' makes a symbol vocab.json has no id for"},
  };
  for (const auto& [files, expected] : cases) {
    try {
      ByteLevelBpeTokenizer::from_files(files.first, files.second, "dir");
      ADD_FAILURE() << expected;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).rfind("dir: ", 0), 0u) << e.what();
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(qkv::load_tokenizer("bpe", "12\n{}"), std::invalid_argument);
}

TEST(ByteLevelBpe, IdsEqualHuggingFaceTokenizersOn120KBOfVariedText) {
  const std::string python = std::string(QKV_SOURCE_DIR) + "/build-libtorch2/venv/bin/python";
  const auto probe = qkv::testing::run_command(python + " -c 'import tokenizers' 2>&1");
  if (probe.exit_code != 0) {
    if (std::getenv("CI")) FAIL() << "no Python with tokenizers (scripts/setup_test_python.sh)";
    GTEST_SKIP() << "no Python with tokenizers (scripts/setup_test_python.sh)";
  }
  TempDir dir("bpe_reference");
  const auto r = qkv::testing::run_command(python + " " + QKV_SOURCE_DIR +
                                           "/tests/bpe_reference.py " + dir.str() + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto t = ByteLevelBpeTokenizer::from_files(qkv::read_file_bytes(dir / "vocab.json"),
                                             qkv::read_file_bytes(dir / "merges.txt"), dir.str());
  const std::string text = qkv::read_file_bytes(dir / "test.txt");
  ASSERT_GE(text.size(), 100000u);
  const auto expected = nlohmann::json::parse(qkv::read_file_bytes(dir / "ids.json"))
                            .get<std::vector<qkv::TokenId>>();
  const auto ids = t.encode(text);
  size_t first_difference = 0;
  while (first_difference < std::min(ids.size(), expected.size()) &&
         ids[first_difference] == expected[first_difference])
    ++first_difference;
  EXPECT_EQ(first_difference, expected.size())
      << "qkv and tokenizers differ from token " << first_difference << " of " << expected.size();
  EXPECT_EQ(ids.size(), expected.size());
  EXPECT_EQ(t.decode(ids), text);
  EXPECT_EQ(t.vocab_size(), 1500);
  // tokenizer.json alone: the same tokenizer.
  const auto from_json = ByteLevelBpeTokenizer::from_directory(dir / "json_only");
  EXPECT_EQ(from_json.encode(text), expected);
}

}  // namespace
