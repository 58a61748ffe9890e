#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace qkv {

// Reads bytes [begin, end) of a file in chunks of about `chunk_bytes` that end just after a
// newline (or at `end`), so no chunk splits a line or a UTF-8 sequence.
class TextChunkReader {
 public:
  // Throws std::runtime_error naming the path when it cannot be opened.
  TextChunkReader(const std::string& path, int64_t begin, int64_t end,
                  size_t chunk_bytes = 1u << 20);
  // The next chunk into `chunk`; false at the end of the range.
  bool next(std::string* chunk);

 private:
  std::ifstream in_;
  int64_t pos_, end_;
  size_t chunk_bytes_;
};

}  // namespace qkv
