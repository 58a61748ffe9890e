#include "qkv/data/text_chunk_reader.h"

#include <algorithm>
#include <stdexcept>

namespace qkv {

TextChunkReader::TextChunkReader(const std::string& path, int64_t begin, int64_t end,
                                 size_t chunk_bytes)
    : in_(path, std::ios::binary),
      pos_(begin),
      end_(end),
      chunk_bytes_(std::max<size_t>(chunk_bytes, 1)) {
  if (!in_) throw std::runtime_error("cannot read " + path);
  in_.seekg(begin);
}

bool TextChunkReader::next(std::string* chunk) {
  if (pos_ >= end_) return false;
  chunk->resize(static_cast<size_t>(std::min<int64_t>(int64_t(chunk_bytes_), end_ - pos_)));
  in_.read(chunk->data(), chunk->size());
  pos_ += chunk->size();
  char c = chunk->empty() ? '\n' : chunk->back();
  while (c != '\n' && pos_ < end_ && in_.get(c)) {
    chunk->push_back(c);
    ++pos_;
  }
  return true;
}

}  // namespace qkv
