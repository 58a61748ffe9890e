#pragma once

#include <string>

namespace qkv {

// The whole content of a file, byte for byte. Throws std::invalid_argument naming the path when
// it cannot be read.
std::string read_file_bytes(const std::string& path);

}  // namespace qkv
