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

}  // namespace

std::string render_line_chart(const std::vector<ChartSeries>& series,
                              const LineChartOptions& options, ImageFormat format) {
  CairoCanvas canvas(format, options.width, options.height);
  cairo_t* cr = canvas.cr();
  const double left = 70, right = 16, top = 34, bottom = 46;
  const double pw = options.width - left - right, ph = options.height - top - bottom;

  canvas.set_rgb(0x222222);
  canvas.font(13, true);
  canvas.text(options.title, left, 20);

  auto usable = [&](double y) { return std::isfinite(y) && (!options.log_y || y > 0); };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!usable(s.y[i]) || !std::isfinite(s.x[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  if (!(x1 >= x0)) {
    canvas.font(12);
    canvas.text("no data", left + pw / 2, top + ph / 2, 0.5);
    return canvas.finish();
  }
  if (x1 == x0) x0 -= 1, x1 += 1;
  if (y1 == y0) {
    const double pad = y0 == 0 ? 1 : std::abs(y0) * 0.1;
    y0 = options.log_y ? y0 / 2 : y0 - pad;
    y1 += options.log_y ? y1 : pad;
  }
  // Axis transforms; a log axis works on log10 values.
  auto fy = [&](double y) { return options.log_y ? std::log10(y) : y; };
  double ly0 = fy(y0), ly1 = fy(y1);
  const double ypad = (ly1 - ly0) * 0.05;
  ly0 -= ypad, ly1 += ypad;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return top + ph - (fy(y) - ly0) / (ly1 - ly0) * ph; };

  // Grid and ticks. On a log axis, ticks are nice linear values placed logarithmically.
  canvas.font(10);
  cairo_set_line_width(cr, 1);
  std::vector<double> yt =
      nice_ticks(options.log_y ? std::pow(10, ly0) : ly0, options.log_y ? std::pow(10, ly1) : ly1,
                 options.log_y ? 8 : 5);  // log axes look emptier
  if (options.log_y) {
    // Linear ticks bunch at the top of a log axis spanning decades: use powers of ten then.
    if (ly1 - ly0 > 1.5) {
      yt.clear();
      for (double e = std::ceil(ly0); e <= ly1; e += 1) yt.push_back(std::pow(10.0, e));
    }
    yt.erase(std::remove_if(yt.begin(), yt.end(), [](double v) { return v <= 0; }), yt.end());
  }
  for (double t : yt) {
    const double y = std::round(py(t)) + 0.5;
    if (y < top - 1 || y > top + ph + 1) continue;
    canvas.set_rgb(0xE5E5E5);
    cairo_move_to(cr, left, y);
    cairo_line_to(cr, left + pw, y);
    cairo_stroke(cr);
    canvas.set_rgb(0x444444);
    canvas.text(tick_text(t), left - 6, y + 3.5, 1.0);
  }
  for (double t : nice_ticks(x0, x1, 6)) {
    const double x = std::round(px(t)) + 0.5;
    canvas.set_rgb(0xE5E5E5);
    cairo_move_to(cr, x, top);
    cairo_line_to(cr, x, top + ph);
    cairo_stroke(cr);
    canvas.set_rgb(0x444444);
    canvas.text(tick_text(t), x, top + ph + 14, 0.5);
  }
  canvas.set_rgb(0x888888);
  cairo_rectangle(cr, left + 0.5, top + 0.5, pw, ph);
  cairo_stroke(cr);

  canvas.set_rgb(0x222222);
  canvas.font(11);
  canvas.text(options.x_label, left + pw / 2, options.height - 10, 0.5);
  cairo_save(cr);
  cairo_translate(cr, 16, top + ph / 2);
  cairo_rotate(cr, -M_PI / 2);
  canvas.text(options.y_label + (options.log_y ? " (log scale)" : ""), 0, 0, 0.5);
  cairo_restore(cr);

  // Series, clipped to the plot area.
  cairo_save(cr);
  cairo_rectangle(cr, left, top, pw, ph);
  cairo_clip(cr);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  for (const auto& s : series) {
    canvas.set_rgb(s.rgb);
    cairo_set_line_width(cr, s.line_width);
    bool pen_down = false;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!usable(s.y[i])) {
        pen_down = false;
        continue;
      }
      if (pen_down)
        cairo_line_to(cr, px(s.x[i]), py(s.y[i]));
      else
        cairo_move_to(cr, px(s.x[i]), py(s.y[i]));
      pen_down = true;
    }
    cairo_stroke(cr);
    if (s.markers)
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!usable(s.y[i])) continue;
        cairo_arc(cr, px(s.x[i]), py(s.y[i]), 3, 0, 2 * M_PI);
        cairo_fill(cr);
      }
  }
  cairo_restore(cr);

  // Legend: one row in the title band, right-aligned, so it never hides data.
  canvas.font(11);
  double lx = left + pw;
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
  return canvas.finish();
}

}  // namespace qkv
