#include "qkv/plot/attention_heatmap.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "cairo_canvas.h"
#include "qkv/inspect/token_label.h"
#include "qkv/io/file_bytes.h"

namespace qkv {

HeatmapLayout HeatmapLayout::for_shape(int64_t tokens, int64_t heads) {
  if (tokens <= 0 || heads <= 0)
    throw std::invalid_argument("heatmap: need at least one token and one head");
  HeatmapLayout l;
  l.tokens = tokens;
  l.heads = heads;
  l.cell = std::clamp(static_cast<int>(kMaxGrid / tokens), kMinCell, kMaxCell);
  l.cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(heads))));
  l.rows = static_cast<int>((heads + l.cols - 1) / l.cols);
  l.width = 2 * kMargin + l.cols * l.panel_width() + (l.cols - 1) * kGap + kGap + kScale;
  l.height = 2 * kMargin + kTitle + l.rows * l.panel_height() + (l.rows - 1) * kGap;
  return l;
}

unsigned viridis(double t) {
  // matplotlib's viridis sampled at 9 evenly spaced points, linearly interpolated.
  static constexpr std::array<std::array<int, 3>, 9> stops = {{{68, 1, 84},
                                                               {71, 44, 122},
                                                               {59, 81, 139},
                                                               {44, 113, 142},
                                                               {33, 144, 141},
                                                               {39, 173, 129},
                                                               {92, 200, 99},
                                                               {170, 220, 50},
                                                               {253, 231, 37}}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * (stops.size() - 1);
  const size_t i = std::min(static_cast<size_t>(t), stops.size() - 2);
  const double f = t - double(i);
  unsigned rgb = 0;
  for (int c = 0; c < 3; ++c) {
    const double v = stops[i][c] + f * (stops[i + 1][c] - stops[i][c]);
    rgb = (rgb << 8) | static_cast<unsigned>(std::lround(v));
  }
  return rgb;
}

namespace {

constexpr unsigned kMaskedGrey = 0xEEEEEE;
constexpr unsigned kInk = 0x222222;

void draw_panel(CairoCanvas& canvas, const HeatmapLayout& l, const std::vector<std::string>& labels,
                const std::vector<float>& w, const std::string& title, double x0, double y0) {
  cairo_t* cr = canvas.cr();
  const int T = static_cast<int>(l.tokens);
  const double gx = x0 + HeatmapLayout::kLabel;  // grid origin
  const double gy = y0 + HeatmapLayout::kHeadTitle + HeatmapLayout::kLabel;
  const double c = l.cell;

  canvas.set_rgb(kInk);
  canvas.font(12, true);
  canvas.text(title, gx + T * c / 2, y0 + 14, 0.5);

  const bool show_values = c >= 26;
  canvas.font(std::min(9.0, c / 3.2));  // for the values in the cells
  for (int i = 0; i < T; ++i) {
    for (int j = 0; j < T; ++j) {
      const float v = w[static_cast<size_t>(i * T + j)];
      const bool masked = j > i && v == 0.0f;
      canvas.set_rgb(masked ? kMaskedGrey : viridis(v));
      cairo_rectangle(cr, gx + j * c, gy + i * c, c, c);
      cairo_fill(cr);
      if (show_values && !masked) {
        char s[8];
        std::snprintf(s, sizeof s, "%.2f", v);
        canvas.set_rgb(v > 0.6 ? kInk : 0xFFFFFF);  // dark text on the light end of viridis
        canvas.text(s, gx + (j + 0.5) * c, gy + (i + 0.5) * c + 3, 0.5);
      }
    }
  }
  cairo_set_line_width(cr, 1);
  canvas.set_rgb(0x999999);
  cairo_rectangle(cr, gx + 0.5, gy + 0.5, T * c - 1, T * c - 1);
  cairo_stroke(cr);

  // Labels: every token when cells are tall enough for the text, else every k-th.
  const double font = std::clamp(c * 0.85, 6.0, 11.0);
  const int every = std::max(1, static_cast<int>(std::ceil(7.0 / c)));
  canvas.font(font);
  canvas.set_rgb(kInk);
  for (int i = 0; i < T; i += every) {
    const std::string s = truncate_display(labels[static_cast<size_t>(i)], 7);
    canvas.text(s, gx - 4, gy + (i + 0.5) * c + font / 3, 1.0);  // query, left of its row
    cairo_save(cr);  // key, above its column, reading upwards
    cairo_translate(cr, gx + (i + 0.5) * c + font / 3, gy - 4);
    cairo_rotate(cr, -M_PI / 2);
    canvas.text(s, 0, 0, 0.0);
    cairo_restore(cr);
  }
}

void draw_scale(CairoCanvas& canvas, double x, double y, double height) {
  cairo_t* cr = canvas.cr();
  const double w = 14;
  const int steps = 64;
  for (int k = 0; k < steps; ++k) {
    canvas.set_rgb(viridis(1.0 - (k + 0.5) / steps));  // 1 at the top
    cairo_rectangle(cr, x, y + height * k / steps, w, height / steps + 0.5);
    cairo_fill(cr);
  }
  canvas.set_rgb(kInk);
  canvas.font(10);
  for (double t : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    char s[8];
    std::snprintf(s, sizeof s, "%.2f", t);
    const double ty = y + height * (1.0 - t);
    cairo_move_to(cr, x + w, ty);
    cairo_line_to(cr, x + w + 4, ty);
    cairo_stroke(cr);
    canvas.text(s, x + w + 6, ty + 3.5);
  }
  canvas.font(10, true);
  canvas.text("weight", x, y - 8);
}

}  // namespace

std::string render_attention_heatmap(const AttentionMap& map, int64_t layer, ImageFormat format) {
  const auto l = HeatmapLayout::for_shape(map.length(), map.n_head);
  std::vector<std::string> labels;
  for (const auto& t : map.tokens) labels.push_back(token_label(t));

  CairoCanvas canvas(format, l.width, l.height);
  canvas.set_rgb(kInk);
  canvas.font(15, true);
  canvas.text("Layer " + std::to_string(layer + 1) +
                  ": attention weights (rows: queries, "
                  "columns: keys)",
              HeatmapLayout::kMargin, HeatmapLayout::kMargin + 16);
  const double top = HeatmapLayout::kMargin + HeatmapLayout::kTitle;
  for (int64_t h = 0; h < map.n_head; ++h) {
    const int col = static_cast<int>(h % l.cols), row = static_cast<int>(h / l.cols);
    draw_panel(canvas, l, labels, map.head(layer, h), "head " + std::to_string(h + 1),
               HeatmapLayout::kMargin + col * (l.panel_width() + HeatmapLayout::kGap),
               top + row * (l.panel_height() + HeatmapLayout::kGap));
  }
  const double grid_top = top + HeatmapLayout::kHeadTitle + HeatmapLayout::kLabel;
  draw_scale(canvas,
             HeatmapLayout::kMargin + l.cols * l.panel_width() + l.cols * HeatmapLayout::kGap,
             grid_top, std::max(60.0, double(map.length() * l.cell)));
  return canvas.finish();
}

std::vector<std::string> write_attention_heatmaps(const AttentionMap& map, const std::string& dir) {
  std::vector<std::string> paths;
  for (int64_t layer = 0; layer < map.n_layer; ++layer) {
    for (ImageFormat f : {ImageFormat::kPng, ImageFormat::kSvg}) {
      const std::string path = dir + "/layer" + std::to_string(layer + 1) + "." + extension(f);
      write_file_atomically(path, render_attention_heatmap(map, layer, f));
      paths.push_back(path);
    }
  }
  return paths;
}

}  // namespace qkv
