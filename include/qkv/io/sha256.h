#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qkv {

// FIPS 180-4 SHA-256, incremental, so a corpus of any size is hashed in bounded memory.
class Sha256 {
 public:
  // use_cpu_extensions: the x86 SHA instructions where the CPU has them (the same digest, ~10x
  // faster); false forces the portable code, for tests.
  explicit Sha256(bool use_cpu_extensions = true);
  static bool cpu_extensions_available();
  void update(std::string_view data);
  std::string hex_digest();  // finishes the hash

  static std::string of_file(const std::string& path);

 private:
  void compress(const unsigned char* block);      // portable
  void compress_one(const unsigned char* block);  // the fastest available
  bool fast_;
  uint32_t h_[8];
  unsigned char buffer_[64];
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

}  // namespace qkv
