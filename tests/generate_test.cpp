// Generation: the KV cache against full recomputation, the sampling filters, seeds, stop strings.
#include <gtest/gtest.h>

#include "qkv/generate/incremental_decoder.h"
#include "qkv/generate/text_generator.h"
#include "qkv/generate/token_sampler.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "test_support.h"

namespace {

using qkv::TokenSampler;

qkv::TransformerLM random_model(int64_t vocab, int64_t block_size, uint64_t seed = 5) {
  return qkv::testing::random_model(vocab, block_size, 32, seed);
}

double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

TEST(IncrementalDecoder, CachedLogitsEqualRecomputationAtEveryStepAcrossSlides) {
  const int64_t block = 16;
  auto model = random_model(20, block);
  qkv::IncrementalDecoder cached(model, true, 1.0), recomputed(model, false, 1.0);
  std::vector<qkv::TokenId> sequence = {3, 1, 4, 1, 5};
  auto a = cached.feed(sequence), b = recomputed.feed(sequence);
  TokenSampler sampler({/*temperature=*/1.0, 0, 1.0, /*seed=*/9});
  for (int step = 0; step < 100; ++step) {
    ASSERT_LT(max_rel_diff(a, b), 1e-5) << "step " << step;
    // Independently of either decoder: the model on the last block_size tokens, from scratch.
    torch::NoGradGuard no_grad;
    const auto from = sequence.size() > size_t(block) ? sequence.end() - block : sequence.begin();
    auto window = torch::tensor(std::vector<int64_t>(from, sequence.end()), torch::kLong);
    auto direct = model(window.unsqueeze(0))[0][-1];
    ASSERT_LT(max_rel_diff(a, direct), 1e-5) << "step " << step;
    const qkv::TokenId next = sampler.sample(a);
    sequence.push_back(next);
    a = cached.feed({next});
    b = recomputed.feed({next});
  }
  EXPECT_EQ(cached.context().size(), size_t(block));
  EXPECT_GT(cached.rebuilds(), 80);  // 105 tokens through a 16-token window: it slid every step
}

TEST(IncrementalDecoder, ChunkedSlideKeepsTheNewestPartAndMatchesRecomputationOfIt) {
  const int64_t block = 16;
  auto model = random_model(20, block);
  // keep 0.5: after a slide the newest 8 tokens stay; the cache then fills up to 16 again.
  qkv::IncrementalDecoder cached(model, true, 0.5), recomputed(model, false, 0.5);
  std::vector<qkv::TokenId> sequence = {3, 1, 4, 1, 5};
  auto a = cached.feed(sequence), b = recomputed.feed(sequence);
  TokenSampler sampler({/*temperature=*/1.0, 0, 1.0, /*seed=*/9});
  size_t window = sequence.size();  // what the model sees, counted independently
  for (int step = 0; step < 100; ++step) {
    ASSERT_LT(max_rel_diff(a, b), 1e-5) << "step " << step;
    ASSERT_EQ(cached.context().size(), window) << "step " << step;
    // The model on exactly the newest `window` tokens, from position 0.
    torch::NoGradGuard no_grad;
    auto ids =
        torch::tensor(std::vector<int64_t>(sequence.end() - window, sequence.end()), torch::kLong);
    ASSERT_LT(max_rel_diff(a, model(ids.unsqueeze(0))[0][-1]), 1e-5) << "step " << step;
    const qkv::TokenId next = sampler.sample(a);
    sequence.push_back(next);
    window = window == size_t(block) ? size_t(block / 2) : window + 1;
    a = cached.feed({next});
    b = recomputed.feed({next});
  }
  // 105 tokens: the 17th is the first slide (back to 8), then every 9th: tokens 17, 26, ..., 98.
  EXPECT_EQ(cached.rebuilds(), 10);
  EXPECT_THROW(qkv::IncrementalDecoder(model, true, 0.0), std::invalid_argument);
  EXPECT_THROW(qkv::IncrementalDecoder(model, true, 1.5), std::invalid_argument);
}

TEST(TokenSampler, TopKKeepsExactlyKOfTheLargest) {
  torch::manual_seed(1);
  auto logits = torch::randn({50});
  auto kept = TokenSampler::top_k_filter(logits, 7);
  auto finite = torch::isfinite(kept);
  EXPECT_EQ(finite.sum().item<int64_t>(), 7);
  auto threshold = std::get<0>(logits.topk(7)).min().item<float>();
  EXPECT_TRUE(torch::equal(finite, logits >= threshold));
  EXPECT_TRUE(torch::equal(kept.masked_select(finite), logits.masked_select(finite)));
  EXPECT_TRUE(torch::equal(TokenSampler::top_k_filter(logits, 0), logits));
}

TEST(TokenSampler, TopPKeepsTheSmallestSetReachingP) {
  // Probabilities 0.05, 0.5, 0.1, 0.2, 0.15 (shuffled, so order is the filter's job).
  auto logits = torch::log(torch::tensor({0.05, 0.5, 0.1, 0.2, 0.15}, torch::kFloat32));
  auto kept = [&](double p) { return torch::isfinite(TokenSampler::top_p_filter(logits, p)); };
  auto mask = [](std::vector<int> v) { return torch::tensor(v).to(torch::kBool); };
  EXPECT_TRUE(torch::equal(kept(0.3), mask({0, 1, 0, 0, 0})));  // 0.5 >= 0.3
  EXPECT_TRUE(torch::equal(kept(0.6), mask({0, 1, 0, 1, 0})));  // 0.5 + 0.2 >= 0.6
  EXPECT_TRUE(torch::equal(kept(0.8), mask({0, 1, 0, 1, 1})));  // + 0.15 = 0.85
  EXPECT_TRUE(torch::equal(kept(0.9), mask({0, 1, 1, 1, 1})));  // + 0.1 = 0.95
  EXPECT_TRUE(torch::equal(kept(1.0), mask({1, 1, 1, 1, 1})));
  // Composed after top-k 2, p = 0.9 cannot add back what top-k removed.
  auto both = TokenSampler::top_p_filter(TokenSampler::top_k_filter(logits, 2), 0.9);
  EXPECT_TRUE(torch::equal(torch::isfinite(both), mask({0, 1, 0, 1, 0})));
}

TEST(TokenSampler, TemperatureZeroIsArgmaxAndSamplesFollowTheFilters) {
  torch::manual_seed(2);
  TokenSampler greedy({0.0, 0, 1.0, 1});
  for (int i = 0; i < 20; ++i) {
    auto logits = torch::randn({30});
    EXPECT_EQ(greedy.sample(logits), logits.argmax().item<int64_t>());
  }
  auto logits = torch::randn({30});
  auto top3 = std::get<1>(logits.topk(3));
  TokenSampler k3({1.5, 3, 1.0, 4});
  for (int i = 0; i < 200; ++i) {
    auto id = k3.sample(logits);
    EXPECT_TRUE((top3 == id).any().item<bool>()) << id;
  }
}

TEST(TokenSampler, ATemperatureTooSmallToDivideByIsGreedy) {
  // logits / 1e-40 overflows float32: it used to end in a NaN probability and LibTorch's error.
  torch::manual_seed(3);
  for (double t : {1e-40, 1e-45, 1e-300}) {
    TokenSampler cold({t, 0, 1.0, 5});
    for (int i = 0; i < 10; ++i) {
      auto logits = torch::randn({30});
      EXPECT_EQ(cold.sample(logits), logits.argmax().item<int64_t>()) << t;
    }
  }
}

TEST(TokenSampler, InvalidOptionsAreClearErrors) {
  EXPECT_THROW(TokenSampler({-0.5, 0, 1.0, 1}), std::invalid_argument);
  EXPECT_THROW(TokenSampler({1.0, -1, 1.0, 1}), std::invalid_argument);
  EXPECT_THROW(TokenSampler({1.0, 0, 0.0, 1}), std::invalid_argument);
  EXPECT_THROW(TokenSampler({1.0, 0, 1.5, 1}), std::invalid_argument);
  qkv::GenerationOptions o;
  o.max_new_tokens = 0;
  EXPECT_THROW(o.validate(), std::invalid_argument);
}

TEST(TextGenerator, SameSeedSameTextDifferentSeedDifferentText) {
  qkv::CharTokenizer tok("\n abcdefghijklmnopqrstuvwxyz");
  auto model = random_model(tok.vocab_size(), 32);
  qkv::TextGenerator gen(model, tok);
  qkv::GenerationOptions o;
  o.max_new_tokens = 60;  // past the 32-token context
  o.sampling.seed = 11;
  auto prompt = tok.encode("the bank");
  auto first = gen.generate(prompt, o), second = gen.generate(prompt, o);
  EXPECT_EQ(first.text, second.text);
  EXPECT_EQ(first.tokens.size(), 60u);
  o.sampling.seed = 12;
  EXPECT_NE(gen.generate(prompt, o).text, first.text);
  // With and without the cache, greedy decoding gives the same text.
  o.sampling.temperature = 0;
  auto with_cache = gen.generate(prompt, o);
  o.use_kv_cache = false;
  EXPECT_EQ(gen.generate(prompt, o).text, with_cache.text);
}

TEST(TextGenerator, StopsBeforeAStopStringAndStreamsEverythingElse) {
  qkv::CharTokenizer tok("\n abcdefghijklmnopqrstuvwxyz");
  auto model = random_model(tok.vocab_size(), 32, 8);
  qkv::TextGenerator gen(model, tok);
  qkv::GenerationOptions o;
  o.max_new_tokens = 40;
  o.sampling.seed = 3;
  auto full = gen.generate({}, o);  // empty prompt: starts from the start token (newline)
  ASSERT_EQ(full.text.size(), 40u);
  const std::string stop = full.text.substr(10, 2);
  o.stop = {stop};
  std::string streamed;
  auto cut = gen.generate({}, o, [&](const std::string& piece) { streamed += piece; });
  EXPECT_TRUE(cut.stopped);
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
  EXPECT_EQ(streamed, cut.text);
}

}  // namespace

namespace {

// The library names an option by its field; the command line by the flag the user typed.
TEST(CommandLine, OptionErrorsNameTheFlag) {
  const std::string qkv = QKV_BINARY;
  const std::string tiny = std::string(QKV_SOURCE_DIR) + "/configs/tiny.yaml";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"generate /no/such.pt --top-k -1", "--top-k must be >= 0 (0 = off), got -1"},
      {"eval /no/such.pt --data x.txt --stride -1",
       "--stride must be >= 0 (0 = the context length), got -1"},
      {"eval /no/such.pt --data x.txt --batch-size 0", "--batch-size must be positive, got 0"},
      {"bench " + tiny + " --warmup -1", "--warmup must be >= 0, got -1"},
  };
  // (--max-new-tokens 0 is refused as it is parsed:
  // Reliability.OutOfRangeValuesAreRefusedNotAltered.)
  for (const auto& [args, message] : cases) {
    auto r = qkv::testing::run_command(qkv + " " + args + " 2>&1");
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_NE(r.out.find("error " + message), std::string::npos) << args << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
}

}  // namespace
