// A safetensors file on arbitrary bytes: SafetensorsError, or tensors whose views lie inside the
// data and that write out and read back to the same names, dtypes, shapes, bytes and metadata.
#include <cstddef>
#include <cstdint>
#include <string>

#include "qkv/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file =
        qkv::SafetensorsFile::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    const auto again = qkv::SafetensorsFile::parse(
        qkv::serialize_safetensors(file.tensors(), file.metadata()), "again");
    if (again.tensors().size() != file.tensors().size() || again.metadata() != file.metadata())
      __builtin_trap();
    for (const auto& t : file.tensors()) {
      const auto* u = again.find(t.name);
      if (!u || u->dtype != t.dtype || u->shape != t.shape || u->bytes != t.bytes) __builtin_trap();
    }
  } catch (const qkv::SafetensorsError&) {
  }
  return 0;
}
