#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qkv {

// FIPS 180-4 SHA-256, incremental, so a corpus of any size is hashed in bounded memory.
class Sha256 {
 public:
  Sha256();
  void update(std::string_view data);
  std::string hex_digest();  // finishes the hash

  static std::string of_file(const std::string& path);

 private:
  void compress(const unsigned char* block);
  uint32_t h_[8];
  unsigned char buffer_[64];
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

}  // namespace qkv
