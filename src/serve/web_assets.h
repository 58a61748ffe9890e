#pragma once

#include <string_view>
#include <vector>

namespace qkv {

// The explorer page's files (web/), compiled into the binary by cmake/embed_assets.cmake: the
// page works with no network and no files beside the program.
struct WebAsset {
  std::string_view path;          // URL path, e.g. "/explorer.js"
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view body;
};

const std::vector<WebAsset>& web_assets();

}  // namespace qkv
