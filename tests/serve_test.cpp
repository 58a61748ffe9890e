// qkv serve: the OpenAI request's checks, the explorer's numbers against the model's, and the
// server itself driven from outside (tests/serve_check.py): the openai client against
// `qkv generate`, every bad request, a restart on the same port, and a real browser on the page.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <torch/torch.h>

#include "qkv/generate/text_generator.h"
#include "qkv/serve/completion_request.h"
#include "qkv/serve/model_service.h"
#include "qkv/serve/request_error.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "qkv/train/checkpoint.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using qkv::testing::TempDir;

// --- the request ----------------------------------------------------------------------------

TEST(CompletionRequest, DefaultsAreOpenAIsAndFieldsAreRead) {
  auto r = qkv::CompletionRequest::parse(json::parse(R"({"prompt": "ROMEO:"})"), 100);
  EXPECT_EQ(r.prompt, "ROMEO:");
  EXPECT_EQ(r.max_tokens, 16);
  EXPECT_EQ(r.sampling.temperature, 1.0);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.seeded);
  r = qkv::CompletionRequest::parse(
      json::parse(R"({"model": "m", "prompt": ["a"], "max_tokens": 7, "temperature": 0,
                      "top_p": 0.5, "top_k": 3, "seed": 9, "stop": ["\n", "x"], "stream": true,
                      "stream_options": {"include_usage": true}, "n": 1, "logprobs": null,
                      "user": "someone"})"),
      100);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt, "a");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.sampling.temperature, 0.0);
  EXPECT_EQ(r.sampling.top_p, 0.5);
  EXPECT_EQ(r.sampling.top_k, 3);
  EXPECT_EQ(r.sampling.seed, 9u);
  EXPECT_TRUE(r.seeded);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "x"}));
  EXPECT_TRUE(r.stream && r.include_usage);
}

TEST(CompletionRequest, EachBadFieldIsA400NamingIt) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"prompt": 3})", "prompt must be a string"},
      {R"({"prompt": ["a", "b"]})", "one prompt per request"},
      {R"({"max_tokens": "9"})", "max_tokens must be an integer"},
      {R"({"max_tokens": 0})", "max_tokens must be between 1 and 100"},
      {R"({"max_tokens": 101})", "max_tokens must be between 1 and 100"},
      {R"({"temperature": "hot"})", "temperature must be a number"},
      {R"({"temperature": 2.5})", "temperature must be between 0 and 2"},
      {R"({"top_p": 0})", "top_p must be in (0, 1]"},
      {R"({"top_k": -1})", "top_k must be 0"},
      {R"({"seed": -4})", "seed must not be negative"},
      {R"({"seed": 1.5})", "seed must be an integer"},
      {R"({"stop": 5})", "stop must be a string or an array"},
      {R"({"stop": ["a", 1]})", "stop must hold strings"},
      {R"({"stop": ""})", "stop strings must not be empty"},
      {R"({"stop": ["a","b","c","d","e"]})", "stop takes at most 4"},
      {R"({"stream": "yes"})", "stream must be true or false"},
      {R"({"n": 2})", "n must be 1"},
      {R"({"echo": true})", "echo is not supported"},
      {R"({"logprobs": 2})", "logprobs is not supported"},
      {R"({"model": 1})", "model must be a string"},
  };
  for (const auto& [body, expected] : cases) {
    try {
      qkv::CompletionRequest::parse(json::parse(body), 100);
      ADD_FAILURE() << body << " was accepted";
    } catch (const qkv::RequestError& e) {
      EXPECT_EQ(e.status(), 400) << body;
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos)
          << body << ": " << e.what();
    }
  }
  // The last: a number beyond a double, which nlohmann's parser reports as out_of_range (found
  // by fuzzing).
  for (const char* body : {"{", "[1, 2]", "\"text\"", "", "{\"max_tokens\": 4e0222222222222}"}) {
    try {
      qkv::parse_json_body(body);
      ADD_FAILURE() << body << " was accepted";
    } catch (const qkv::RequestError& e) {
      EXPECT_EQ(e.status(), 400);
    }
  }
}

// --- the service ----------------------------------------------------------------------------

// A run directory with three checkpoints of a random char model (different weights each):
// step_0000100.pt, last.pt and best.pt.
std::string write_run(const TempDir& dir) {
  qkv::CharTokenizer::VocabularyBuilder vocab;
  vocab.add(qkv::testing::sample_corpus());
  const auto tokenizer = vocab.build();
  auto config = qkv::testing::tiny_config(dir);
  config.model.vocab_size = tokenizer.vocab_size();
  config.model.block_size = 48;
  const std::string run = dir / "run";
  fs::create_directories(run);
  for (const auto& [name, step] : std::vector<std::pair<std::string, int64_t>>{
           {"step_0000100.pt", 100}, {"last.pt", 300}, {"best.pt", 200}}) {
    torch::manual_seed(static_cast<uint64_t>(step));
    qkv::TransformerLM model(config.model);
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.3);
    qkv::TrainingState state;
    state.step = step;
    qkv::write_checkpoint(run + "/" + name, model, nullptr, config, tokenizer, state);
  }
  return run;
}

TEST(ModelService, ListsTheRunsCheckpointsAndRefusesOthers) {
  TempDir dir("serve_list");
  qkv::ModelService service(write_run(dir));
  EXPECT_EQ(service.checkpoint_names(),
            (std::vector<std::string>{"step_0000100.pt", "last.pt", "best.pt"}));
  const auto info = service.info();
  EXPECT_EQ(info["default"], "best.pt");
  EXPECT_EQ(info["step"], 200);
  EXPECT_EQ(info["model"], "run");
  EXPECT_EQ(service.attention("The king", "step_0000100.pt")["step"], 100);
  try {
    service.attention("The king", "../best.pt");
    ADD_FAILURE() << "a checkpoint outside the list was read";
  } catch (const qkv::RequestError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_NE(std::string(e.what()).find("step_0000100.pt, last.pt, best.pt"), std::string::npos);
  }
}

TEST(ModelService, TheExplainedRowIsTheModelsAttentionAndItsOutput) {
  TempDir dir("serve_explain");
  qkv::ModelService service(write_run(dir));
  const std::string text = "The queen weeps.";
  const auto attention = service.attention(text, "");
  for (int64_t layer : {0, 1})
    for (int64_t query : {0, 5, 15}) {
      const auto e = service.explain(text, "", layer, 1, query);
      const auto& row = attention["weights"][layer][1][query];
      ASSERT_EQ(e["keys"].size(), size_t(query + 1));
      double sum = 0;
      std::vector<double> output(e["q"].size(), 0.0);
      for (const auto& k : e["keys"]) {
        const int64_t j = k["position"];
        // The page's formula, from the shown q and k alone: exp(q.k * scale) normalised.
        double dot = 0;
        for (size_t d = 0; d < e["q"].size(); ++d) dot += double(e["q"][d]) * double(k["k"][d]);
        EXPECT_NEAR(dot, double(k["dot"]), 1e-9);
        EXPECT_NEAR(double(k["scaled"]), dot * double(e["scale"]), 1e-9);
        EXPECT_NEAR(double(k["weight"]), double(row[j]), 1e-6) << layer << " " << query << " " << j;
        sum += double(k["weight"]);
        for (size_t d = 0; d < output.size(); ++d)
          output[d] += double(k["weight"]) * double(k["v"][d]);
      }
      EXPECT_NEAR(sum, 1.0, 1e-9);
      for (size_t d = 0; d < output.size(); ++d)
        EXPECT_NEAR(output[d], double(e["output"][d]), 1e-9);
      EXPECT_DOUBLE_EQ(double(e["scale"]), 1.0 / std::sqrt(double(e["d_k"])));
    }
  try {
    service.explain(text, "", 0, 9, 0);
    ADD_FAILURE() << "head 9 accepted";
  } catch (const qkv::RequestError& e) {
    EXPECT_NE(std::string(e.what()).find("head must be in [0, "), std::string::npos) << e.what();
  }
}

TEST(ModelService, NextTokensAreTheSoftmaxOfTheLastLogitsAtTheTemperature) {
  TempDir dir("serve_next");
  const auto run = write_run(dir);
  qkv::ModelService service(run);
  auto ckpt = qkv::Checkpoint::load(run + "/best.pt");
  ckpt.model->eval();
  const std::string text = "My lord";
  const auto ids = ckpt.tokenizer->encode(text);
  torch::NoGradGuard no_grad;
  auto logits =
      ckpt.model
          ->forward(torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0))[0][-1]
          .to(torch::kFloat64);
  for (double t : {0.5, 1.0, 1.7}) {
    const auto probs = torch::softmax(logits / t, 0);
    const auto n = service.next_tokens(text, "", t, 10);
    ASSERT_EQ(n["top"].size(), 10u);
    double previous = 1.0;
    for (const auto& tok : n["top"]) {
      EXPECT_NEAR(double(tok["probability"]), probs[int64_t(tok["id"])].item<double>(), 1e-6);
      EXPECT_LE(double(tok["probability"]), previous);
      previous = tok["probability"];
    }
  }
  const auto greedy = service.next_tokens(text, "", 0.0, 3);
  EXPECT_EQ(int64_t(greedy["top"][0]["id"]), logits.argmax().item<int64_t>());
  EXPECT_EQ(double(greedy["top"][0]["probability"]), 1.0);
}

TEST(ModelService, ACompletionIsTheGeneratorsTextAndALongPromptIsRefused) {
  TempDir dir("serve_complete");
  const auto run = write_run(dir);
  qkv::ModelService service(run);
  auto request = qkv::CompletionRequest::parse(
      json::parse(R"({"prompt": "The king", "max_tokens": 30, "temperature": 0.8, "seed": 7,
                      "stop": ["."]})"),
      1000);
  std::string streamed;
  const auto out = service.complete(request, [&](const std::string& s) { streamed += s; });
  auto ckpt = qkv::Checkpoint::load(run + "/best.pt");
  ckpt.model->eval();
  qkv::TextGenerator generator(ckpt.model, *ckpt.tokenizer);
  const auto expected =
      generator.generate(ckpt.tokenizer->encode("The king"), request.generation_options());
  EXPECT_EQ(out.text, expected.text);
  EXPECT_EQ(streamed, expected.text);
  EXPECT_EQ(out.finish_reason, expected.stopped ? "stop" : "length");
  EXPECT_EQ(out.usage.prompt_tokens, 8);
  EXPECT_EQ(out.usage.completion_tokens, int64_t(expected.tokens.size()));

  request.prompt = std::string(49, 'a');
  try {
    service.complete(request);
    ADD_FAILURE() << "a prompt over the context was served";
  } catch (const qkv::RequestError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(
        std::string(e.what()).find("prompt has 49 tokens, more than the model's context of 48"),
        std::string::npos)
        << e.what();
  }
  request.prompt = "The king";
  request.model = "other";
  EXPECT_THROW(service.complete(request), qkv::RequestError);
  request.model = "run:last.pt";
  EXPECT_NE(service.complete(request).text, out.text);  // another checkpoint's weights
}

// --- the server from outside ----------------------------------------------------------------

// `python` when it imports `module`, else "": the test environment's for openai, Debian's own
// (python3-selenium) for Selenium.
std::string python_with(const std::string& python, const std::string& module) {
  const auto probe =
      qkv::testing::run_command(python + " -c 'import " + module + "' > /dev/null 2>&1");
  return probe.exit_code == 0 ? python : "";
}

#define REQUIRE_PYTHON(python, what)                                 \
  do {                                                               \
    if ((python).empty()) {                                          \
      const std::string why = std::string("no Python with ") + what; \
      if (std::getenv("CI")) FAIL() << why;                          \
      GTEST_SKIP() << why;                                           \
    }                                                                \
  } while (0)

void run_check(const std::string& python, const std::string& mode) {
  TempDir dir("serve_" + mode);
  const auto run = write_run(dir);
  const auto r =
      qkv::testing::run_command(python + " " + QKV_SOURCE_DIR + "/tests/serve_check.py " + mode +
                                " " + QKV_BINARY + " " + run + " " + dir.str() + " 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("serve_check " + mode + ": all passed"), std::string::npos) << r.out;
}

TEST(Serve, TheOpenAIClientGetsWhatGenerateGivesAndBadRequestsGet4xx) {
  const auto python =
      python_with(std::string(QKV_SOURCE_DIR) + "/build-libtorch2/venv/bin/python", "openai");
  REQUIRE_PYTHON(python, "the openai package (scripts/setup_test_python.sh)");
  run_check(python, "api");
}

TEST(Serve, ABrowserSeesTheModelsAttentionAndTheFormulaReproducesIt) {
  const auto python = python_with("/usr/bin/python3", "selenium");
  REQUIRE_PYTHON(python, "Selenium (python3-selenium, chromium-driver: scripts/setup.sh)");
  if (std::system("command -v chromedriver > /dev/null 2>&1") != 0) {
    if (std::getenv("CI")) FAIL() << "chromedriver is not installed (scripts/setup.sh)";
    GTEST_SKIP() << "chromedriver not installed";
  }
  run_check(python, "page");
}

}  // namespace
