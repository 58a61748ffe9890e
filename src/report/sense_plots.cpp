#include "qkv/report/sense_plots.h"

#include <cctype>
#include <cstdio>
#include <filesystem>

#include "qkv/io/file_bytes.h"
#include "qkv/plot/line_chart.h"

namespace qkv {

namespace {

// "layer 1" -> "layer1", "+ positions" -> "positions", "final norm" -> "final_norm".
std::string slug(const std::string& level) {
  std::string out;
  for (char c : level)
    if (std::isalnum(static_cast<unsigned char>(c)))
      out += c;
    else if (c == ' ' && !out.empty() && out.rfind("layer", 0) != 0)
      out += '_';
  return out;
}

constexpr unsigned kPalette[] = {0x1f77b4, 0xd62728, 0x2ca02c, 0x9467bd, 0xff7f0e, 0x8c564b};

}  // namespace

std::vector<std::string> write_sense_plots(const SenseProbe& probe, const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::vector<std::string> paths;
  for (size_t l = 0; l < probe.levels.size(); ++l) {
    const auto& sep = probe.separation[l];
    const auto pca = sep.pca.accessor<double, 2>();
    std::vector<ChartSeries> series;
    for (size_t s = 0; s < probe.senses.size(); ++s) {
      ChartSeries c;
      c.label = probe.senses[s];
      c.rgb = kPalette[s % (sizeof kPalette / sizeof kPalette[0])];
      c.line_width = 0;
      c.markers = true;
      for (size_t i = 0; i < probe.sense_of.size(); ++i)
        if (probe.sense_of[i] == int(s)) {
          c.x.push_back(pca[int64_t(i)][0]);
          c.y.push_back(pca[int64_t(i)][1]);
        }
      series.push_back(std::move(c));
    }
    LineChartOptions o;
    char title[200];
    std::snprintf(title, sizeof title, "%s, %s: nearest centroid %.0f%%", probe.word.c_str(),
                  probe.levels[l].c_str(), 100 * sep.nearest_centroid_accuracy);
    o.title = title;
    o.x_label = "principal component 1 (position-centred vectors)";
    o.y_label = "component 2";
    o.width = 600;
    o.height = 380;
    o.x_pad = 0.05;
    for (ImageFormat f : {ImageFormat::kPng, ImageFormat::kSvg}) {
      const std::string path =
          dir + "/" + probe.word + "_pca_" + slug(probe.levels[l]) + "." + extension(f);
      write_file_atomically(path, render_line_chart(series, o, f));
      paths.push_back(path);
    }
  }
  return paths;
}

}  // namespace qkv
