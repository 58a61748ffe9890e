#include "qkv/plot/line_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "cairo_canvas.h"

namespace qkv {

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

namespace {

std::string tick_text(double v) {
  char s[32];
  const double a = std::abs(v);
  if (a != 0 && (a >= 1e5 || a < 1e-3))
    std::snprintf(s, sizeof s, "%.0e", v);
  else if (a >= 1000)
    std::snprintf(s, sizeof s, "%.0f", v);
  else
    std::snprintf(s, sizeof s, "%.4g", v);
  return s;
}

// The plot area and the map from data to pixels; a log axis works on log10 values.
struct ChartFrame {
  double left = 70, right = 16, top = 34, bottom = 46;
  double pw = 0, ph = 0;    // plot area in pixels
  double x0 = 0, x1 = 0;    // data range on x
  double ly0 = 0, ly1 = 0;  // data range on y, log10 on a log axis, padded by 5%
  bool log_y = false;

  double fy(double y) const { return log_y ? std::log10(y) : y; }
  double px(double x) const { return left + (x - x0) / (x1 - x0) * pw; }
  double py(double y) const { return top + ph - (fy(y) - ly0) / (ly1 - ly0) * ph; }
  bool usable(double y) const { return std::isfinite(y) && (!log_y || y > 0); }
};

// The frame around every drawable point of every series; false when there is none.
bool fit_frame(const std::vector<ChartSeries>& series, const LineChartOptions& options,
               ChartFrame& f) {
  f.log_y = options.log_y;
  f.pw = options.width - f.left - f.right;
  f.ph = options.height - f.top - f.bottom;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!f.usable(s.y[i]) || !std::isfinite(s.x[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  if (!(x1 >= x0)) return false;
  if (x1 == x0) x0 -= 1, x1 += 1;
  if (y1 == y0) {
    const double pad = y0 == 0 ? 1 : std::abs(y0) * 0.1;
    y0 = f.log_y ? y0 / 2 : y0 - pad;
    y1 += f.log_y ? y1 : pad;
  }
  const double xpad = (x1 - x0) * options.x_pad;
  f.x0 = x0 - xpad, f.x1 = x1 + xpad;
  f.ly0 = f.fy(y0), f.ly1 = f.fy(y1);
  const double ypad = (f.ly1 - f.ly0) * 0.05;
  f.ly0 -= ypad, f.ly1 += ypad;
  return true;
}

// On a log axis, ticks are nice linear values placed logarithmically; across decades, powers of
// ten (linear ticks bunch at the top of such an axis).
std::vector<double> y_ticks(const ChartFrame& f) {
  if (!f.log_y) return nice_ticks(f.ly0, f.ly1, 5);
  std::vector<double> ticks = nice_ticks(std::pow(10, f.ly0), std::pow(10, f.ly1), 8);
  if (f.ly1 - f.ly0 > 1.5) {
    ticks.clear();
    for (double e = std::ceil(f.ly0); e <= f.ly1; e += 1) ticks.push_back(std::pow(10.0, e));
  }
  ticks.erase(std::remove_if(ticks.begin(), ticks.end(), [](double v) { return v <= 0; }),
              ticks.end());
  return ticks;
}

void draw_grid(CairoCanvas& canvas, const ChartFrame& f) {
  cairo_t* cr = canvas.cr();
  canvas.font(10);
  cairo_set_line_width(cr, 1);
  for (double t : y_ticks(f)) {
    const double y = std::round(f.py(t)) + 0.5;
    if (y < f.top - 1 || y > f.top + f.ph + 1) continue;
    canvas.set_rgb(0xE5E5E5);
    cairo_move_to(cr, f.left, y);
    cairo_line_to(cr, f.left + f.pw, y);
    cairo_stroke(cr);
    canvas.set_rgb(0x444444);
    canvas.text(tick_text(t), f.left - 6, y + 3.5, 1.0);
  }
  for (double t : nice_ticks(f.x0, f.x1, 6)) {
    const double x = std::round(f.px(t)) + 0.5;
    canvas.set_rgb(0xE5E5E5);
    cairo_move_to(cr, x, f.top);
    cairo_line_to(cr, x, f.top + f.ph);
    cairo_stroke(cr);
    canvas.set_rgb(0x444444);
    canvas.text(tick_text(t), x, f.top + f.ph + 14, 0.5);
  }
  canvas.set_rgb(0x888888);
  cairo_rectangle(cr, f.left + 0.5, f.top + 0.5, f.pw, f.ph);
  cairo_stroke(cr);
}

void draw_axis_labels(CairoCanvas& canvas, const ChartFrame& f, const LineChartOptions& options) {
  cairo_t* cr = canvas.cr();
  canvas.set_rgb(0x222222);
  canvas.font(11);
  canvas.text(options.x_label, f.left + f.pw / 2, options.height - 10, 0.5);
  cairo_save(cr);
  cairo_translate(cr, 16, f.top + f.ph / 2);
  cairo_rotate(cr, -M_PI / 2);
  canvas.text(options.y_label + (options.log_y ? " (log scale)" : ""), 0, 0, 0.5);
  cairo_restore(cr);
}

// Lines (broken where a value cannot be drawn) and markers, clipped to the plot area.
void draw_series(CairoCanvas& canvas, const ChartFrame& f, const std::vector<ChartSeries>& series) {
  cairo_t* cr = canvas.cr();
  cairo_save(cr);
  cairo_rectangle(cr, f.left, f.top, f.pw, f.ph);
  cairo_clip(cr);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  for (const auto& s : series) {
    canvas.set_rgb(s.rgb);
    cairo_set_line_width(cr, s.line_width);
    bool pen_down = false;
    for (size_t i = 0; s.line_width > 0 && i < s.x.size() && i < s.y.size(); ++i) {
      if (!f.usable(s.y[i])) {
        pen_down = false;
        continue;
      }
      if (pen_down)
        cairo_line_to(cr, f.px(s.x[i]), f.py(s.y[i]));
      else
        cairo_move_to(cr, f.px(s.x[i]), f.py(s.y[i]));
      pen_down = true;
    }
    cairo_stroke(cr);
    if (s.markers)
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!f.usable(s.y[i])) continue;
        cairo_arc(cr, f.px(s.x[i]), f.py(s.y[i]), 3, 0, 2 * M_PI);
        cairo_fill(cr);
      }
  }
  cairo_restore(cr);
}

// One row in the title band, right-aligned, so it never hides data.
void draw_legend(CairoCanvas& canvas, const ChartFrame& f, const std::vector<ChartSeries>& series) {
  cairo_t* cr = canvas.cr();
  canvas.font(11);
  double lx = f.left + f.pw;
  for (auto it = series.rbegin(); it != series.rend(); ++it) {
    if (it->label.empty()) continue;
    lx -= canvas.text_width(it->label) + 28 + 14;
    canvas.set_rgb(it->rgb);
    cairo_set_line_width(cr, 2.5);
    cairo_move_to(cr, lx, 16);
    cairo_line_to(cr, lx + 22, 16);
    cairo_stroke(cr);
    canvas.set_rgb(0x222222);
    canvas.text(it->label, lx + 28, 20);
  }
}

}  // namespace

std::string render_line_chart(const std::vector<ChartSeries>& series,
                              const LineChartOptions& options, ImageFormat format) {
  CairoCanvas canvas(format, options.width, options.height);
  ChartFrame frame;
  canvas.set_rgb(0x222222);
  canvas.font(13, true);
  canvas.text(options.title, frame.left, 20);
  if (!fit_frame(series, options, frame)) {
    canvas.font(12);
    canvas.text("no data", frame.left + frame.pw / 2, frame.top + frame.ph / 2, 0.5);
    return canvas.finish();
  }
  draw_grid(canvas, frame);
  draw_axis_labels(canvas, frame, options);
  draw_series(canvas, frame, series);
  draw_legend(canvas, frame, series);
  return canvas.finish();
}

}  // namespace qkv
