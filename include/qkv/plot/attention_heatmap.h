#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qkv/inspect/attention_map.h"
#include "qkv/plot/image_format.h"

namespace qkv {

// Where things go in a layer's heatmap image: a title, then a grid of head panels (each with
// key labels above, query labels on the left, T x T cells), then a colour scale on the right.
// The size follows from the token and head counts alone, so callers (and tests) can predict it.
struct HeatmapLayout {
  static constexpr int kMargin = 16;
  static constexpr int kTitle = 30;      // the layer's title band
  static constexpr int kHeadTitle = 20;  // "head 1" above each panel
  static constexpr int kLabel = 60;      // token labels: left of the rows, above the columns
  static constexpr int kGap = 24;        // between panels, and before the colour scale
  static constexpr int kScale = 64;      // the colour scale and its tick labels
  static constexpr int kMaxGrid = 480;   // a panel's cells span at most this many pixels...
  static constexpr int kMinCell = 6;     // ...unless cells would be smaller than this
  static constexpr int kMaxCell = 32;

  int64_t tokens = 0;
  int64_t heads = 0;
  int cell = 0;  // pixels per weight
  int cols = 0;  // panels per row: ceil(sqrt(heads))
  int rows = 0;
  int width = 0;
  int height = 0;

  static HeatmapLayout for_shape(int64_t tokens, int64_t heads);
  int panel_width() const { return kLabel + static_cast<int>(tokens) * cell; }
  int panel_height() const { return kHeadTitle + kLabel + static_cast<int>(tokens) * cell; }
};

// One layer's heads as a grid of heatmaps, colour = weight on a fixed 0..1 scale (so panels
// compare), masked future positions grey, weights printed in the cells when they fit.
// Returns the bytes of a PNG or SVG file.
std::string render_attention_heatmap(const AttentionMap& map, int64_t layer, ImageFormat format);

// Writes layer1.png, layer1.svg, layer2.png, ... into `dir` (created if needed); returns the
// paths written.
std::vector<std::string> write_attention_heatmaps(const AttentionMap& map, const std::string& dir);

// The viridis colour map (perceptually uniform, readable in grey and by colour-blind readers)
// at t in [0, 1], as 0xRRGGBB.
unsigned viridis(double t);

}  // namespace qkv
