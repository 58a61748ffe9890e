#include "qkv/report/training_report.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "qkv/data/data_preparer.h"
#include "qkv/data/file_bytes.h"
#include "qkv/data/token_file.h"
#include "qkv/generate/text_generator.h"
#include "qkv/inspect/attention_probe.h"
#include "qkv/plot/attention_heatmap.h"
#include "qkv/plot/line_chart.h"
#include "qkv/report/base64.h"
#include "qkv/report/run_metrics.h"
#include "qkv/runtime/median.h"
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
  std::vector<int64_t> tokens(static_cast<size_t>(n));
  file.read(0, n, tokens.data());
  const std::string text = tokenizer.decode(std::vector<int32_t>(tokens.begin(), tokens.end()));
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
  auto ckpt = Checkpoint::load(run_dir);  // best.pt, else last.pt
  ckpt.model->eval();
  const auto& cfg = ckpt.config;

  // --- charts ---------------------------------------------------------------------------------
  std::vector<double> steps, loss, lr, tps, ms;
  for (const auto& s : metrics.steps) {
    steps.push_back(double(s.step));
    loss.push_back(s.loss);
    lr.push_back(s.lr);
    tps.push_back(s.tokens_per_s);
    ms.push_back(s.ms);
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
  LineChartOptions loss_opts{"Loss", "step", "cross-entropy (nats/token)", false};
  const std::string loss_linear = render_line_chart(loss_series, loss_opts, ImageFormat::kPng);
  loss_opts.log_y = true;
  const std::string loss_log = render_line_chart(loss_series, loss_opts, ImageFormat::kPng);
  const std::string lr_png =
      render_line_chart({{"", steps, lr, kTrainColour, 2.0, false}},
                        {"Learning rate", "step", "learning rate", false}, ImageFormat::kPng);
  const std::string tps_png = render_line_chart(
      {{"per step", steps, tps, kTrainFaint, 1.0, false},
       {"mean of 25 steps", steps, trailing_mean(tps, 25), kTrainColour, 2.0, false}},
      {"Throughput", "step", "tokens/s", false}, ImageFormat::kPng);

  // --- sample and attention ---------------------------------------------------------------------
  GenerationOptions gen;
  gen.max_new_tokens = options.sample_tokens;
  gen.sampling.temperature = options.temperature;
  gen.sampling.top_k = options.top_k;
  gen.sampling.seed = options.seed;
  TextGenerator generator(ckpt.model, *ckpt.tokenizer);
  const auto sample = generator.generate({}, gen);

  std::string attention_text = options.attention_text;
  if (attention_text.empty()) {
    try {
      attention_text = validation_line(cfg, *ckpt.tokenizer);
    } catch (const std::exception&) {
      attention_text.clear();  // the data directory may be gone; the sample will do
    }
    if (attention_text.empty()) attention_text = sample.text;
  }
  auto ids = ckpt.tokenizer->encode_from(attention_text, "report: attention text");
  const int64_t keep = std::min<int64_t>(options.attention_tokens, cfg.model.block_size);
  if (static_cast<int64_t>(ids.size()) > keep) {
    ids.resize(static_cast<size_t>(keep));
    attention_text = ckpt.tokenizer->decode(ids);
    // End at a word boundary when one is in the second half: half a word reads as noise.
    const size_t space = attention_text.rfind(' ');
    if (space != std::string::npos && space > attention_text.size() / 2) {
      attention_text.resize(space);
      ids = ckpt.tokenizer->encode(attention_text);
    }
  }
  std::string heatmaps;
  if (!ids.empty()) {
    const auto map = probe_attention(ckpt.model, *ckpt.tokenizer, ids, attention_text);
    for (int64_t l = 0; l < map.n_layer; ++l)
      heatmaps += "<figure>" +
                  png_img(render_attention_heatmap(map, l, ImageFormat::kPng),
                          "attention heatmap, layer " + std::to_string(l + 1)) +
                  "</figure>\n";
  }

  // --- summary ----------------------------------------------------------------------------------
  const RunMetrics::Eval* best = nullptr;
  for (const auto& e : metrics.evals)
    if (!best || e.val_loss < best->val_loss) best = &e;
  char best_text[128] = "no evaluation yet";
  if (best)
    std::snprintf(best_text, sizeof best_text, "%.4f at step %lld (perplexity %.2f)",
                  best->val_loss, (long long)best->step, std::exp(best->val_loss));
  char speed[128];
  // The trainer's own tokens/s per step (it counts accumulation and every rank).
  std::snprintf(speed, sizeof speed, "%.1f ms/step median, %.0f tokens/s", median(ms), median(tps));
  const std::time_t now = std::time(nullptr);
  char when[64];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));

  std::ostringstream html;
  html << R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>qkv report: )"
       << html_escape(run_dir) << R"(</title>
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
)";
  html << "<p class=\"sub\">" << html_escape(run_dir) << " &middot; report written " << when
       << " &middot; qkv " << QKV_VERSION << "</p>\n";
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
  html << "<section id=\"loss\"><h2>Loss</h2>\n"
       << "<p><label><input type=\"checkbox\" id=\"log-scale\"> log scale</label></p>\n"
       << png_img(loss_linear, "loss curves", "id=\"loss-linear\"") << "\n"
       << png_img(loss_log, "loss curves, log scale", "id=\"loss-log\" hidden") << "\n"
       << "</section>\n";
  html << "<section id=\"lr\"><h2>Learning rate</h2>\n"
       << png_img(lr_png, "learning-rate schedule") << "</section>\n";
  html << "<section id=\"throughput\"><h2>Throughput</h2>\n"
       << png_img(tps_png, "tokens per second") << "</section>\n";
  char settings[160];
  std::snprintf(settings, sizeof settings,
                "%lld tokens, temperature %.2f, top-k %lld, seed %llu, from an empty prompt",
                (long long)options.sample_tokens, options.temperature, (long long)options.top_k,
                (unsigned long long)options.seed);
  html << "<section id=\"sample\"><h2>Sample</h2>\n<p>From " << html_escape(ckpt.path) << ": "
       << settings << ".</p>\n<pre>" << html_escape(sample.text) << "</pre></section>\n";
  html << "<section id=\"attention\"><h2>Attention</h2>\n<p>Weights of every head for the text "
          "<code>"
       << html_escape(attention_text)
       << "</code>. Row = query token, column = key token it attends to; grey = future "
          "positions the causal mask hides. Each row sums to 1.</p>\n"
       << heatmaps << "</section>\n";
  html << "<section id=\"config\"><h2>Resolved config</h2>\n<pre>" << html_escape(cfg.to_yaml())
       << "</pre></section>\n";
  html << R"(<script>
document.getElementById("log-scale").addEventListener("change", function (e) {
  document.getElementById("loss-linear").hidden = e.target.checked;
  document.getElementById("loss-log").hidden = !e.target.checked;
});
</script>
</body></html>
)";
  const std::string path = run_dir + "/report.html";
  write_file_atomically(path, html.str());
  return path;
}

}  // namespace qkv
