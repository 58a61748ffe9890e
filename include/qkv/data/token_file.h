#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "qkv/tokenizer/token_id.h"

namespace qkv {

// Token files are flat little-endian arrays: uint16 when the vocabulary fits, uint32 otherwise.
enum class TokenDtype { kUInt16, kUInt32 };

TokenDtype dtype_for_vocab(int64_t vocab_size);
std::string to_string(TokenDtype dtype);
TokenDtype token_dtype_from_string(const std::string& name);
size_t bytes_per_token(TokenDtype dtype);

// A read-only memory map of a token file: the OS pages it in, so a corpus larger than memory
// costs nothing up front.
class TokenFile {
 public:
  TokenFile(const std::string& path, TokenDtype dtype);
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  int64_t size() const { return count_; }
  uint32_t at(int64_t i) const;
  // Copies tokens [start, start + n) into out: int64 for index tensors, TokenId for tokenizers.
  void read(int64_t start, int64_t n, int64_t* out) const;
  void read(int64_t start, int64_t n, TokenId* out) const;
  const std::string& path() const { return path_; }

  // Throws std::invalid_argument naming the file, the first id >= vocab_size and its position:
  // ids outside the vocabulary would index past the embedding table.
  void check_ids_below(int64_t vocab_size) const;
  // A cheap identity: SHA-256 of the token count, the first and the last MiB. Recorded in
  // meta.json when the file is written, so a file swapped or cut later is told apart.
  std::string identity() const;

 private:
  std::string path_;
  TokenDtype dtype_;
  const void* data_ = nullptr;
  size_t bytes_ = 0;
  int64_t count_ = 0;
};

// Appends tokens to `path + ".tmp"` and renames it into place on finish(), so a half-written
// file never carries the final name.
class TokenFileWriter {
 public:
  TokenFileWriter(const std::string& path, TokenDtype dtype);
  ~TokenFileWriter();
  void append(const std::vector<TokenId>& ids);
  int64_t finish();  // returns the token count

 private:
  std::string path_;
  TokenDtype dtype_;
  std::FILE* file_ = nullptr;
  int64_t count_ = 0;
  std::vector<unsigned char> buffer_;
};

}  // namespace qkv
