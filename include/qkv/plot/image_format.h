#pragma once

#include <string>

namespace qkv {

// What the plots render to: PNG for embedding and viewing, SVG for papers and zooming.
enum class ImageFormat { kPng, kSvg };

inline const char* extension(ImageFormat format) {
  return format == ImageFormat::kPng ? "png" : "svg";
}

}  // namespace qkv
