#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace qkv {

// The safetensors format, written and read by hand (it is small enough to need no library): an
// 8-byte little-endian header length, a JSON header mapping each name to its dtype, shape and
// byte range, then the raw little-endian data. No LibTorch here; the model's side is in
// model_export.h.

class SafetensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One tensor to write: `bytes` must hold exactly numel * dtype size bytes, little-endian.
struct SafetensorsTensor {
  std::string name;
  std::string dtype;  // "F32", "F64", "BF16", "F16", "I64", "I32", "U8", ...
  std::vector<int64_t> shape;
  std::string_view bytes;
};

// Bytes of one element of a safetensors dtype, or 0 for a name the format does not have.
size_t safetensors_dtype_size(const std::string& dtype);

// The whole file. The header is padded with spaces to a multiple of 8 bytes so that the data
// that follows is aligned. Throws SafetensorsError on a repeated name, an unknown dtype or bytes
// that do not match the shape.
std::string serialize_safetensors(const std::vector<SafetensorsTensor>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

// A safetensors file read back. Keeps the file's bytes; the tensors' views point into them.
class SafetensorsFile {
 public:
  // Throws SafetensorsError naming `origin` (a path) and what is wrong: a header longer than the
  // file, JSON that is not the format's, a byte range outside the data or not matching the shape.
  static SafetensorsFile parse(std::string bytes, const std::string& origin);
  static SafetensorsFile read(const std::string& path);

  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The tensor named `name`, or nullptr.
  const SafetensorsTensor* find(const std::string& name) const;

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile(SafetensorsFile&&) = default;
  SafetensorsFile& operator=(SafetensorsFile&&) = default;

 private:
  SafetensorsFile() = default;
  std::unique_ptr<const std::string> bytes_;  // on the heap: views survive a move
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace qkv
