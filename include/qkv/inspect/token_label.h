#pragma once

#include <string>

namespace qkv {

// How a token is shown on table headers and heatmap axes. A char model's space and newline
// tokens would otherwise be invisible labels, so whitespace is drawn with visible symbols
// (space U+2423, newline U+21B5, tab U+21E5); other control bytes as \xNN.
std::string token_label(const std::string& piece);

// Terminal columns a UTF-8 string occupies, counting one per code point: the labels use only
// narrow characters, and this keeps table columns aligned when they hold multi-byte symbols.
size_t display_width(const std::string& utf8);

// `utf8` cut to at most `columns` code points, ending in U+2026 when it was cut.
std::string truncate_display(const std::string& utf8, size_t columns);

}  // namespace qkv
