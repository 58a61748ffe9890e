// A checkpoint's metadata record on arbitrary bytes: std::invalid_argument, or a record that
// writes back to itself.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "qkv/train/checkpoint_meta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto meta =
        qkv::CheckpointMeta::parse(std::string(reinterpret_cast<const char*>(data), size));
    const auto again = qkv::CheckpointMeta::parse(meta.to_json());
    if (again.to_json() != meta.to_json()) __builtin_trap();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
