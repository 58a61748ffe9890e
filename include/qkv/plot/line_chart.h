#pragma once

#include <string>
#include <vector>

#include "qkv/plot/image_format.h"

namespace qkv {

struct ChartSeries {
  std::string label;
  std::vector<double> x;
  std::vector<double> y;
  unsigned rgb = 0x1f77b4;  // 0xRRGGBB
  double line_width = 1.5;  // 0: no line (with markers, a scatter plot)
  bool markers = false;     // dots at the points: for sparse series such as evaluations
};

struct LineChartOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_y = false;  // non-positive values are left out on a log axis
  int width = 760;
  int height = 320;
  double x_pad = 0;  // fraction of the x range added at each end (a scatter's edge points)
};

// A line chart with axes, "nice" ticks (1, 2, 5 x 10^k), grid lines and a legend. Returns the
// bytes of a PNG or SVG file. Series may be empty; the chart then says "no data".
std::string render_line_chart(const std::vector<ChartSeries>& series,
                              const LineChartOptions& options, ImageFormat format);

// Ticks covering [lo, hi] at a step of 1, 2 or 5 x 10^k, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

}  // namespace qkv
