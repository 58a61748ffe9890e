#include "qkv/inspect/token_label.h"

#include <cstdio>
#include <stdexcept>

#include "qkv/tokenizer/char_tokenizer.h"

namespace qkv {

namespace {

std::string hex_byte(unsigned char c) {
  char hex[8];
  std::snprintf(hex, sizeof hex, "\\x%02X", c);
  return hex;
}

}  // namespace

std::string token_label(const std::string& piece) {
  std::string out;
  size_t pos = 0;
  while (pos < piece.size()) {
    const size_t start = pos;
    uint32_t cp = 0;
    try {
      cp = next_code_point(piece, &pos);
    } catch (const std::exception&) {
      // A byte-level piece can be part of a multi-byte character: show the byte, since
      // invalid UTF-8 would break terminals, JSON and the font renderer alike.
      out += hex_byte(static_cast<unsigned char>(piece[start]));
      pos = start + 1;
      continue;
    }
    if (cp == ' ')
      out += "\u2423";
    else if (cp == '\n')
      out += "\u21b5";
    else if (cp == '\t')
      out += "\u21e5";
    else if (cp < 0x20 || cp == 0x7f)
      out += hex_byte(static_cast<unsigned char>(cp));
    else
      out.append(piece, start, pos - start);
  }
  return out;
}

size_t display_width(const std::string& utf8) {
  size_t n = 0;
  for (unsigned char c : utf8)
    if ((c & 0xC0) != 0x80) ++n;  // count lead bytes, not continuation bytes
  return n;
}

std::string truncate_display(const std::string& utf8, size_t columns) {
  if (display_width(utf8) <= columns) return utf8;
  if (columns == 0) return "";
  std::string out;
  size_t n = 0;
  for (size_t i = 0; i < utf8.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(utf8[i]);
    if ((c & 0xC0) != 0x80 && ++n > columns - 1) break;
    out += utf8[i];
  }
  return out + "\u2026";
}

}  // namespace qkv
