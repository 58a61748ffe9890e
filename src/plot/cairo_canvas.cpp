#include "cairo_canvas.h"

#include <cairo-svg.h>

#include <stdexcept>

namespace qkv {

namespace {

cairo_status_t append_bytes(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

void check(cairo_status_t status, const char* what) {
  if (status != CAIRO_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cairo: ") + what + ": " + cairo_status_to_string(status));
}

}  // namespace

CairoCanvas::CairoCanvas(ImageFormat format, int width, int height) : format_(format) {
  if (width <= 0 || height <= 0 || width > 32767 || height > 32767)
    throw std::invalid_argument("image size " + std::to_string(width) + "x" +
                                std::to_string(height) + " is outside 1..32767 pixels");
  if (format == ImageFormat::kPng) {
    surface_ = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height);
  } else {
    surface_ = cairo_svg_surface_create_for_stream(append_bytes, &bytes_, width, height);
    cairo_svg_surface_set_document_unit(surface_, CAIRO_SVG_UNIT_PX);
  }
  check(cairo_surface_status(surface_), "creating a surface");
  cr_ = cairo_create(surface_);
  check(cairo_status(cr_), "creating a context");
  // An opaque white background: transparent PNGs read badly in dark viewers.
  cairo_set_source_rgb(cr_, 1, 1, 1);
  cairo_paint(cr_);
}

CairoCanvas::~CairoCanvas() {
  if (cr_) cairo_destroy(cr_);
  if (surface_) cairo_surface_destroy(surface_);
}

std::string CairoCanvas::finish() {
  check(cairo_status(cr_), "drawing");
  if (format_ == ImageFormat::kPng) {
    cairo_surface_flush(surface_);
    check(cairo_surface_write_to_png_stream(surface_, append_bytes, &bytes_), "writing PNG");
  } else {
    cairo_surface_finish(surface_);  // the SVG stream is written on finish
    check(cairo_surface_status(surface_), "writing SVG");
  }
  return std::move(bytes_);
}

void CairoCanvas::set_rgb(unsigned rgb) {
  cairo_set_source_rgb(cr_, ((rgb >> 16) & 0xff) / 255.0, ((rgb >> 8) & 0xff) / 255.0,
                       (rgb & 0xff) / 255.0);
}

void CairoCanvas::font(double size, bool bold) {
  // DejaVu Sans has the whitespace symbols the token labels use (U+2423, U+21B5).
  cairo_select_font_face(cr_, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr_, size);
}

double CairoCanvas::text_width(const std::string& utf8) {
  cairo_text_extents_t e;
  cairo_text_extents(cr_, utf8.c_str(), &e);
  return e.x_advance;
}

void CairoCanvas::text(const std::string& utf8, double x, double y, double align) {
  cairo_move_to(cr_, x - align * text_width(utf8), y);
  cairo_show_text(cr_, utf8.c_str());
}

}  // namespace qkv
