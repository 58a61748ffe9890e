// report.html: written by training, complete, self-contained, and clean in a real browser.
#include <gtest/gtest.h>

#include <cstdlib>
#include <regex>

#include "qkv/io/file_bytes.h"
#include "qkv/report/run_metrics.h"
#include "qkv/report/training_report.h"
#include "qkv/train/trainer.h"
#include "test_support.h"

namespace {

using qkv::testing::TempDir;

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

struct BrowserView {
  std::string dom;                   // the page after its scripts ran
  std::vector<std::string> console;  // every console message (log, warning, error, exception)
};

// Opens a local HTML file in headless Chromium, with name resolution disabled so that nothing
// can come from the network, dumps the DOM, collects console output and writes a screenshot.
BrowserView open_in_chromium(const std::string& html, const std::string& screenshot,
                             const std::string& profile) {
  const std::string log = profile + ".log";
  const std::string cmd =
      "chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync "
      "--disable-dev-shm-usage "
      "--host-resolver-rules='MAP * ~NOTFOUND' --hide-scrollbars --enable-logging=stderr --v=0 "
      "--user-data-dir=" +
      profile + " --window-size=1200,2400 --screenshot=" + screenshot + " --dump-dom file://" +
      std::filesystem::absolute(html).string() + " 2> " + log;
  BrowserView view;
  auto r = qkv::testing::run_command(cmd);
  EXPECT_EQ(r.exit_code, 0) << cmd;
  view.dom = r.out;
  std::istringstream lines(qkv::read_file_bytes(log));
  std::string line;
  while (std::getline(lines, line))
    if (line.find(":CONSOLE") != std::string::npos) view.console.push_back(line);
  return view;
}

bool have_chromium() {
  if (std::system("command -v chromium > /dev/null 2>&1") == 0) return true;
  // CI installs it (scripts/setup.sh): there its absence is a failure, not a skip.
  return false;
}

#define REQUIRE_CHROMIUM()                                                           \
  if (!have_chromium()) {                                                            \
    if (std::getenv("CI")) FAIL() << "chromium is not installed (scripts/setup.sh)"; \
    GTEST_SKIP() << "chromium not installed";                                        \
  }

TEST(Report, TrainingWritesItAtTheEndAndAtCheckpointsWhenAsked) {
  TempDir dir("report_train");
  auto config = qkv::testing::prepared_tiny(dir, {"train.max_steps=20", "eval.every=10",
                                                  "checkpoint.every=10", "checkpoint.report=true"});
  qkv::TrainerOptions options;
  options.after_checkpoint = qkv::report_after_checkpoint();
  qkv::Trainer(config, options).run();
  const std::string html = qkv::read_file_bytes(dir / "run/report.html");
  EXPECT_EQ(count(qkv::read_file_bytes(dir / "run/train.log"), "report: "), 2);  // step 10, end

  TempDir quiet("report_train_quiet");
  auto config2 = qkv::testing::prepared_tiny(
      quiet, {"train.max_steps=20", "eval.every=10", "checkpoint.every=10"});
  qkv::Trainer(config2, options).run();
  EXPECT_EQ(count(qkv::read_file_bytes(quiet / "run/train.log"), "report: "), 1);  // end only
  EXPECT_TRUE(std::filesystem::is_regular_file(quiet / "run/report.html"));

  // The trainer itself knows nothing of reports: with no observer there is none.
  TempDir bare("report_train_bare");
  auto config3 = qkv::testing::prepared_tiny(bare, {"train.max_steps=10", "eval.every=10"});
  qkv::Trainer(config3).run();
  EXPECT_FALSE(std::filesystem::exists(bare / "run/report.html"));
}

TEST(Report, AFailingObserverIsAWarningNotTheEndOfTraining) {
  TempDir dir("report_observer_throws");
  auto config = qkv::testing::prepared_tiny(dir, {"train.max_steps=20", "eval.every=10",
                                                  "checkpoint.every=10", "checkpoint.report=true"});
  qkv::TrainerOptions options;
  int calls = 0;
  options.after_checkpoint = [&](const qkv::Config&, bool) -> std::string {
    ++calls;
    throw std::runtime_error("disk on fire");
  };
  auto result = qkv::Trainer(config, options).run();
  EXPECT_EQ(result.final_step, 20);
  EXPECT_EQ(calls, 2);  // step 10 and the end
  EXPECT_EQ(count(qkv::read_file_bytes(dir / "run/train.log"), "disk on fire"), 2);
}

TEST(Report, IsSelfContainedAndOpensInChromiumWithoutConsoleErrors) {
  REQUIRE_CHROMIUM();
  TempDir dir("report");
  auto config = qkv::testing::prepared_tiny(dir, {"train.max_steps=30", "eval.every=10"});
  auto result = qkv::Trainer(config).run();

  // The command line rewrites it, with a chosen attention text.
  auto r = qkv::testing::run_qkv("report " + (dir / "run") +
                                 " --text 'The king weeps' --sample-tokens 80");
  ASSERT_EQ(r.exit_code, 0);
  const std::string path = dir / "run/report.html";
  const std::string html = qkv::read_file_bytes(path);

  // Self-contained: every image is a data URI, nothing is fetched from anywhere.
  EXPECT_FALSE(std::regex_search(html, std::regex(R"((src|href)\s*=\s*"(https?:)?//)")));
  EXPECT_EQ(count(html, "<img "), count(html, "src=\"data:image/png;base64,"));
  EXPECT_EQ(count(html, "<link"), 0);
  // The facts it reports.
  char best[64];
  std::snprintf(best, sizeof best, "%.4f at step %lld", result.best_val_loss,
                (long long)result.best_step);
  EXPECT_NE(html.find(best), std::string::npos) << best;
  EXPECT_NE(html.find("The king weeps"), std::string::npos);
  EXPECT_EQ(count(html, "alt=\"attention heatmap, layer "), 2);  // tiny has 2 layers

  const std::string shot = dir / "run/report.png";
  auto view = open_in_chromium(path, shot, dir / "profile");
  EXPECT_TRUE(view.console.empty()) << view.console.front();
  for (const char* id : {"summary", "loss", "lr", "throughput", "sample", "attention", "config"})
    EXPECT_NE(view.dom.find("<section id=\"" + std::string(id) + "\">"), std::string::npos) << id;
  EXPECT_NE(view.dom.find("id=\"log-scale\""), std::string::npos);
  const std::string png = qkv::read_file_bytes(shot);
  EXPECT_EQ(png.substr(0, 8), "\x89PNG\r\n\x1a\n");
  EXPECT_GT(png.size(), 10000u);                          // a page, not a blank
  if (const char* keep = std::getenv("QKV_KEEP_REPORT"))  // for a human to look at
    std::filesystem::copy(dir / "run", keep,
                          std::filesystem::copy_options::recursive |
                              std::filesystem::copy_options::overwrite_existing);
}

TEST(Report, TheBrowserCheckCatchesConsoleErrors) {
  REQUIRE_CHROMIUM();
  TempDir dir("report_control");
  qkv::testing::write_file(dir / "bad.html",
                           "<!DOCTYPE html><html><body><section id=\"summary\"></section>"
                           "<script>console.error('broken'); missing();</script></body></html>");
  auto view = open_in_chromium(dir / "bad.html", dir / "bad.png", dir / "profile");
  ASSERT_EQ(view.console.size(), 2u);
  EXPECT_NE(view.console[0].find("broken"), std::string::npos);
  EXPECT_NE(view.console[1].find("missing is not defined"), std::string::npos);
}

TEST(Report, MissingRunDirectoryIsAClearError) {
  TempDir dir("report_missing");
  auto r =
      qkv::testing::run_command(std::string(QKV_BINARY) + " report " + (dir / "nope") + " 2>&1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("nope is not a run directory"), std::string::npos) << r.out;
  try {
    qkv::write_training_report(dir.str());
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl not found"), std::string::npos);
  }
}

}  // namespace

namespace {

// Found by fuzz/metrics_fuzz.cpp: a step written as a float beyond int64 was converted by a cast
// whose overflow is undefined behaviour.
TEST(RunMetrics, AStepThatIsNotAnIntegerNamesTheLine) {
  const std::string text =
      "{\"type\":\"step\",\"step\":1,\"loss\":2.0,\"lr\":0.1}\n"
      "{\"type\":\"step\",\"step\":4e89,\"loss\":2.0,\"lr\":0.1}\n"
      "{\"type\":\"step\",\"step\":3,\"loss\":2.0,\"lr\":0.1}\n";
  try {
    qkv::RunMetrics::parse(text, "m.jsonl");
    FAIL() << "a float step was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind("m.jsonl:2: step: expected an integer", 0), 0u)
        << e.what();
  }
}

}  // namespace
