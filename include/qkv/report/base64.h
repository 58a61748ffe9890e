#pragma once

#include <string>

namespace qkv {

// RFC 4648 base64 with padding: how images travel inside a self-contained HTML report.
std::string base64_encode(const std::string& bytes);

}  // namespace qkv
