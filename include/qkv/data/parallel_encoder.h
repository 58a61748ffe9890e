#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

struct ParallelEncoderOptions {
  int threads = 0;                // 0 = every core
  size_t chunk_bytes = 1u << 16;  // text per task; a chunk ends after a newline
};

// Receives each chunk's ids in the file's order, with the chunk's size in bytes.
using EncodedChunkSink = std::function<void(const std::vector<TokenId>& ids, int64_t bytes)>;

// Tokenizes bytes [begin, end) of `path` on several threads. The range is cut into chunks that
// end just after a newline (or at `end`), so no chunk splits a line or a UTF-8 sequence; each
// thread encodes whole chunks and `sink` gets them in order, so the ids equal those of encoding
// chunk after chunk on one thread. At most 2 x threads chunks are in flight, which bounds the
// memory. An encoding error is rethrown here, prefixed by the path.
void encode_file_in_parallel(const Tokenizer& tokenizer, const std::string& path, int64_t begin,
                             int64_t end, const ParallelEncoderOptions& options,
                             const EncodedChunkSink& sink);

}  // namespace qkv
