#pragma once

#include <string>

namespace qkv {

// The whole content of a file, byte for byte. Throws std::invalid_argument naming the path when
// it cannot be read.
std::string read_file_bytes(const std::string& path);

// Replaces `path` with `data` atomically: a temporary file beside it, fsync, rename, fsync of the
// directory. A crash leaves the old file or the new one, never a torn one. Creates the directory.
// Throws std::runtime_error naming the path.
void write_file_atomically(const std::string& path, const std::string& data);

}  // namespace qkv
