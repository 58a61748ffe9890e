// A data directory on arbitrary bytes: meta.json, a NUL byte, then train.bin. DatasetMeta::load
// and open_checked refuse with std::invalid_argument, or every token they hand out lies inside
// the vocabulary.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "qkv/data/data_preparer.h"

namespace {

const std::string& scratch_dir() {
  static const std::string dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("qkv_fuzz_" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  return dir;
}

void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string dir = scratch_dir();
  write(dir + "/meta.json", input.substr(0, split));
  write(dir + "/train.bin", split == std::string::npos ? "" : input.substr(split + 1));
  try {
    const auto meta = qkv::DatasetMeta::load(dir);
    const auto file = meta.open_checked("train");
    if (file->size() != meta.train_tokens) __builtin_trap();
    std::vector<int64_t> tokens(static_cast<size_t>(file->size()));
    if (!tokens.empty()) file->read(0, file->size(), tokens.data());
    for (int64_t t : tokens)
      if (t < 0 || t >= meta.vocab_size) __builtin_trap();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
