#pragma once

#include <cairo.h>

#include <string>

#include "qkv/plot/image_format.h"

namespace qkv {

// A Cairo drawing surface that ends as the bytes of a PNG or SVG file. Both formats come from
// the same drawing calls, so they show the same picture; SVG sizes are in pixels, like the PNG.
class CairoCanvas {
 public:
  CairoCanvas(ImageFormat format, int width, int height);
  ~CairoCanvas();
  CairoCanvas(const CairoCanvas&) = delete;
  CairoCanvas& operator=(const CairoCanvas&) = delete;

  cairo_t* cr() { return cr_; }
  // Finishes the drawing and returns the file's bytes; throws std::runtime_error on a Cairo error.
  std::string finish();

  // Helpers shared by the plots.
  void set_rgb(unsigned rgb);  // 0xRRGGBB
  void font(double size, bool bold = false);
  double text_width(const std::string& utf8);
  // Text with its left edge (align 0), centre (0.5) or right edge (1) at x, baseline at y.
  void text(const std::string& utf8, double x, double y, double align = 0.0);

 private:
  ImageFormat format_;
  cairo_surface_t* surface_ = nullptr;
  cairo_t* cr_ = nullptr;
  std::string bytes_;
};

}  // namespace qkv
