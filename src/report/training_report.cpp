#include "qkv/report/training_report.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <sstream>
#include <utility>

#include "qkv/data/data_preparer.h"
#include "qkv/data/token_file.h"
#include "qkv/generate/text_generator.h"
#include "qkv/inspect/attention_probe.h"
#include "qkv/io/file_bytes.h"
#include "qkv/plot/attention_heatmap.h"
#include "qkv/plot/line_chart.h"
#include "qkv/report/base64.h"
#include "qkv/report/run_metrics.h"
#include "qkv/runtime/median.h"
#include "qkv/runtime/runtime_setup.h"
#include "qkv/train/checkpoint.h"

namespace qkv {

namespace fs = std::filesystem;

namespace {

constexpr unsigned kTrainColour = 0x1f77b4;
constexpr unsigned kTrainFaint = 0xa6c8e6;
constexpr unsigned kValColour = 0xd62728;

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string png_img(const std::string& png, const std::string& alt, const std::string& attrs = "") {
  return "<img alt=\"" + html_escape(alt) + "\" " + attrs + " src=\"data:image/png;base64," +
         base64_encode(png) + "\">";
}

// Mean over a trailing window: per-step losses and speeds are noisy, the trend is what a reader
// wants; the raw values stay drawn faintly underneath.
std::vector<double> trailing_mean(const std::vector<double>& v, size_t window) {
  std::vector<double> out(v.size());
  double sum = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    sum += v[i];
    if (i >= window) sum -= v[i - window];
    out[i] = sum / double(std::min(i + 1, window));
  }
  return out;
}

// A line of validation text to look at: the first whole, non-trivial line among the first few
// hundred tokens (the split may start mid-line, and blank lines have nothing to attend to).
std::string validation_line(const Config& config, const Tokenizer& tokenizer) {
  const auto meta = DatasetMeta::load(config.data.dir);
  TokenFile file(meta.val_path(), meta.dtype);
  const int64_t n = std::min<int64_t>(file.size(), 1000);
  if (n <= 0) return "";
  std::vector<TokenId> tokens(static_cast<size_t>(n));
  file.read(0, n, tokens.data());
  const std::string text = tokenizer.decode(tokens);
  size_t from = text.find('\n');
  while (from != std::string::npos) {
    const size_t end = text.find('\n', from + 1);
    if (end == std::string::npos) break;
    const std::string line = text.substr(from + 1, end - from - 1);
    if (line.size() >= 12) return line;
    from = end;
  }
  return "";
}

struct RunCharts {
  std::string loss_linear, loss_log, lr, throughput;  // PNG bytes
};

RunCharts render_run_charts(const RunMetrics& metrics) {
  std::vector<double> steps, loss, lr, tps;
  for (const auto& s : metrics.steps) {
    steps.push_back(double(s.step));
    loss.push_back(s.loss);
    lr.push_back(s.lr);
    tps.push_back(s.tokens_per_s);
  }
  std::vector<double> eval_steps, eval_train, eval_val;
  for (const auto& e : metrics.evals) {
    eval_steps.push_back(double(e.step));
    eval_train.push_back(e.train_loss);
    eval_val.push_back(e.val_loss);
  }
  const std::vector<ChartSeries> loss_series = {
      {"train (per step)", steps, loss, kTrainFaint, 1.0, false},
      {"train (eval batches)", eval_steps, eval_train, kTrainColour, 2.0, true},
      {"val", eval_steps, eval_val, kValColour, 2.0, true}};
  RunCharts charts;
  LineChartOptions loss_opts{"Loss", "step", "cross-entropy (nats/token)", false};
  charts.loss_linear = render_line_chart(loss_series, loss_opts, ImageFormat::kPng);
  loss_opts.log_y = true;
  charts.loss_log = render_line_chart(loss_series, loss_opts, ImageFormat::kPng);
  charts.lr =
      render_line_chart({{"", steps, lr, kTrainColour, 2.0, false}},
                        {"Learning rate", "step", "learning rate", false}, ImageFormat::kPng);
  charts.throughput = render_line_chart(
      {{"per step", steps, tps, kTrainFaint, 1.0, false},
       {"mean of 25 steps", steps, trailing_mean(tps, 25), kTrainColour, 2.0, false}},
      {"Throughput", "step", "tokens/s", false}, ImageFormat::kPng);
  return charts;
}

// The text whose attention the report shows, cut to `max_tokens` (at a word boundary when one is
// in its second half: half a word reads as noise), and its ids.
std::pair<std::string, std::vector<TokenId>> attention_text(const TrainingReportOptions& options,
                                                            const Checkpoint& ckpt,
                                                            const std::string& sample) {
  std::string text = options.attention_text;
  if (text.empty()) {
    try {
      text = validation_line(ckpt.config, *ckpt.tokenizer);
    } catch (const std::exception&) {
      text.clear();  // the data directory may be gone; the sample will do
    }
    if (text.empty()) text = sample;
  }
  auto ids = ckpt.tokenizer->encode_from(text, "report: attention text");
  const int64_t keep = std::min<int64_t>(options.attention_tokens, ckpt.config.model.block_size);
  if (static_cast<int64_t>(ids.size()) > keep) {
    ids.resize(static_cast<size_t>(keep));
    text = ckpt.tokenizer->decode(ids);
    const size_t space = text.rfind(' ');
    if (space != std::string::npos && space > text.size() / 2) {
      text.resize(space);
      ids = ckpt.tokenizer->encode(text);
    }
  }
  return {text, ids};
}

std::string attention_figures(Checkpoint& ckpt, const std::vector<TokenId>& ids,
                              const std::string& text) {
  std::string figures;
  if (ids.empty()) return figures;
  const auto map = probe_attention(ckpt.model, *ckpt.tokenizer, ids, text);
  for (int64_t l = 0; l < map.n_layer; ++l)
    figures += "<figure>" +
               png_img(render_attention_heatmap(map, l, ImageFormat::kPng),
                       "attention heatmap, layer " + std::to_string(l + 1)) +
               "</figure>\n";
  return figures;
}

std::string page_head(const std::string& run_dir) {
  const std::time_t now = std::time(nullptr);
  char when[64];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  return R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>qkv report: )" +
         html_escape(run_dir) + R"(</title>
<style>
body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.sub { color: #666; margin-top: 0; }
table.summary td:first-child { color: #555; padding-right: 1.5em; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; white-space: pre-wrap; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
label { user-select: none; }
</style></head><body>
<h1>qkv training report</h1>
<p class="sub">)" +
         html_escape(run_dir) + " &middot; report written " + when + " &middot; qkv " +
         QKV_VERSION + "</p>\n";
}

std::string summary_section(const RunMetrics& metrics, const Checkpoint& ckpt) {
  const auto& cfg = ckpt.config;
  const RunMetrics::Eval* best = nullptr;
  for (const auto& e : metrics.evals)
    if (!best || e.val_loss < best->val_loss) best = &e;
  char best_text[128] = "no evaluation yet";
  if (best)
    std::snprintf(best_text, sizeof best_text, "%.4f at step %lld (perplexity %.2f)",
                  best->val_loss, (long long)best->step, std::exp(best->val_loss));
  std::vector<double> ms, tps;
  for (const auto& s : metrics.steps) ms.push_back(s.ms), tps.push_back(s.tokens_per_s);
  char speed[128];
  // The trainer's own tokens/s per step (it counts accumulation and every rank).
  std::snprintf(speed, sizeof speed, "%.1f ms/step median, %.0f tokens/s", median(ms), median(tps));
  std::ostringstream html;
  html << "<section id=\"summary\"><h2>Summary</h2><table class=\"summary\">\n"
       << "<tr><td>best validation loss</td><td id=\"best-val\">" << best_text << "</td></tr>\n"
       << "<tr><td>steps</td><td>" << (metrics.steps.empty() ? 0 : metrics.steps.back().step)
       << " of " << cfg.train.max_steps << "</td></tr>\n"
       << "<tr><td>speed</td><td>" << speed << "</td></tr>\n"
       << "<tr><td>model</td><td>" << cfg.model.n_layer << " layers, " << cfg.model.n_head
       << " heads, d_model " << cfg.model.d_model << ", context " << cfg.model.block_size
       << ", vocabulary " << cfg.model.vocab_size << " (" << html_escape(ckpt.tokenizer->kind())
       << ")</td></tr>\n"
       << "<tr><td>checkpoint</td><td>" << html_escape(ckpt.path) << " (step " << ckpt.state.step
       << ")</td></tr>\n</table></section>\n";
  return html.str();
}

std::string charts_sections(const RunCharts& charts) {
  return "<section id=\"loss\"><h2>Loss</h2>\n"
         "<p><label><input type=\"checkbox\" id=\"log-scale\"> log scale</label></p>\n" +
         png_img(charts.loss_linear, "loss curves", "id=\"loss-linear\"") + "\n" +
         png_img(charts.loss_log, "loss curves, log scale", "id=\"loss-log\" hidden") + "\n" +
         "</section>\n<section id=\"lr\"><h2>Learning rate</h2>\n" +
         png_img(charts.lr, "learning-rate schedule") +
         "</section>\n<section id=\"throughput\"><h2>Throughput</h2>\n" +
         png_img(charts.throughput, "tokens per second") + "</section>\n";
}

std::string sample_section(const TrainingReportOptions& options, const std::string& checkpoint,
                           const std::string& sample) {
  char settings[160];
  std::snprintf(settings, sizeof settings,
                "%lld tokens, temperature %.2f, top-k %lld, seed %llu, from an empty prompt",
                (long long)options.sample_tokens, options.temperature, (long long)options.top_k,
                (unsigned long long)options.seed);
  return "<section id=\"sample\"><h2>Sample</h2>\n<p>From " + html_escape(checkpoint) + ": " +
         settings + ".</p>\n<pre>" + html_escape(sample) + "</pre></section>\n";
}

std::string attention_section(const std::string& text, const std::string& figures) {
  return "<section id=\"attention\"><h2>Attention</h2>\n<p>Weights of every head for the text "
         "<code>" +
         html_escape(text) +
         "</code>. Row = query token, column = key token it attends to; grey = future "
         "positions the causal mask hides. Each row sums to 1.</p>\n" +
         figures + "</section>\n";
}

// Where a PCA plot's level stands among the others: static, positions, layer1.., final_norm.
int level_rank(const std::string& level) {
  if (level == "static") return 0;
  if (level == "positions") return 1;
  if (level.rfind("layer", 0) == 0) return 2 + std::atoi(level.c_str() + 5);
  return 1 << 20;
}

// The PCA plots `qkv embed --senses ... --out RUN_DIR/embed` left in the run directory, by word
// and level; empty when there are none.
std::string senses_section(const std::string& run_dir) {
  const fs::path dir = fs::path(run_dir) / "embed";
  std::map<std::string, std::map<int, fs::path>> plots;  // word -> level rank -> file
  if (fs::is_directory(dir))
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      const size_t at = name.find("_pca_");
      if (entry.path().extension() != ".png" || at == std::string::npos) continue;
      const std::string level = entry.path().stem().string().substr(at + 5);
      plots[name.substr(0, at)][level_rank(level)] = entry.path();
    }
  if (plots.empty()) return "";
  std::string html =
      "<section id=\"senses\"><h2>One word, many contexts</h2>\n<p>Each dot is the word's "
      "vector in one probe sentence, coloured by the sense its context gives it, on the first two "
      "principal components of the vectors (each position's mean removed), at every level of the "
      "model: the static embedding cannot tell the senses apart; attention can. Written by "
      "<code>qkv embed --senses</code>.</p>\n";
  for (const auto& [word, levels] : plots) {
    html += "<h3>" + html_escape(word) + "</h3>\n<div class=\"pca\">";
    for (const auto& [rank, path] : levels)
      html += png_img(read_file_bytes(path.string()),
                      word + ", " + path.stem().string().substr(word.size() + 5), "width=\"420\"");
    html += "</div>\n";
  }
  return html + "</section>\n";
}

std::string page_end(const Config& config) {
  return "<section id=\"config\"><h2>Resolved config</h2>\n<pre>" + html_escape(config.to_yaml()) +
         "</pre></section>\n" + R"(<script>
document.getElementById("log-scale").addEventListener("change", function (e) {
  document.getElementById("loss-linear").hidden = e.target.checked;
  document.getElementById("loss-log").hidden = !e.target.checked;
});
</script>
</body></html>
)";
}

}  // namespace

std::string write_training_report(const std::string& run_dir,
                                  const TrainingReportOptions& options) {
  if (!fs::is_directory(run_dir))
    throw std::invalid_argument("report: " + run_dir + " is not a run directory");
  const std::string metrics_path = run_dir + "/metrics.jsonl";
  if (!fs::is_regular_file(metrics_path))
    throw std::invalid_argument("report: " + metrics_path + " not found (is " + run_dir +
                                " a qkv run directory?)");
  const auto metrics = RunMetrics::load(metrics_path);
  if (metrics.steps.empty())
    throw std::invalid_argument("report: " + metrics_path +
                                " holds no training steps: there is nothing to report");
  auto ckpt = Checkpoint::load(run_dir);  // best.pt, else last.pt
  ckpt.model->to(torch::Device(resolve_device(options.device)));
  ckpt.model->eval();

  GenerationOptions gen;
  gen.max_new_tokens = options.sample_tokens;
  gen.sampling.temperature = options.temperature;
  gen.sampling.top_k = options.top_k;
  gen.sampling.seed = options.seed;
  const auto sample = TextGenerator(ckpt.model, *ckpt.tokenizer).generate({}, gen);
  const auto [text, ids] = attention_text(options, ckpt, sample.text);

  const std::string html = page_head(run_dir) + summary_section(metrics, ckpt) +
                           charts_sections(render_run_charts(metrics)) +
                           sample_section(options, ckpt.path, sample.text) +
                           attention_section(text, attention_figures(ckpt, ids, text)) +
                           senses_section(run_dir) + page_end(ckpt.config);
  const std::string path = run_dir + "/report.html";
  write_file_atomically(path, html);
  return path;
}

std::function<std::string(const Config&, bool)> report_after_checkpoint(
    TrainingReportOptions options) {
  return [options](const Config& config, bool) -> std::string {
    return "report: " + write_training_report(config.train.out_dir, options);
  };
}

}  // namespace qkv
