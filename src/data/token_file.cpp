#include "qkv/data/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "qkv/io/sha256.h"

namespace qkv {

TokenDtype dtype_for_vocab(int64_t vocab_size) {
  return vocab_size <= 65536 ? TokenDtype::kUInt16 : TokenDtype::kUInt32;
}

std::string to_string(TokenDtype dtype) {
  return dtype == TokenDtype::kUInt16 ? "uint16" : "uint32";
}

TokenDtype token_dtype_from_string(const std::string& name) {
  if (name == "uint16") return TokenDtype::kUInt16;
  if (name == "uint32") return TokenDtype::kUInt32;
  throw std::invalid_argument("token dtype must be 'uint16' or 'uint32', got '" + name + "'");
}

size_t bytes_per_token(TokenDtype dtype) {
  return dtype == TokenDtype::kUInt16 ? 2 : 4;
}

TokenFile::TokenFile(const std::string& path, TokenDtype dtype) : path_(path), dtype_(dtype) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0)
    throw std::invalid_argument("cannot open token file " + path + ": " + std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  bytes_ = static_cast<size_t>(st.st_size);
  if (bytes_ % bytes_per_token(dtype) != 0) {
    ::close(fd);
    throw std::invalid_argument("token file " + path + " has " + std::to_string(bytes_) +
                                " bytes, not a whole number of " + to_string(dtype) + " tokens");
  }
  count_ = static_cast<int64_t>(bytes_ / bytes_per_token(dtype));
  if (bytes_ > 0) {
    data_ = ::mmap(nullptr, bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data_ == MAP_FAILED) {
      ::close(fd);
      throw std::runtime_error("cannot map token file " + path);
    }
  }
  ::close(fd);
}

TokenFile::~TokenFile() {
  if (data_ && data_ != MAP_FAILED) ::munmap(const_cast<void*>(data_), bytes_);
}

uint32_t TokenFile::at(int64_t i) const {
  return dtype_ == TokenDtype::kUInt16 ? static_cast<const uint16_t*>(data_)[i]
                                       : static_cast<const uint32_t*>(data_)[i];
}

namespace {

template <typename Out>
void copy_tokens(const void* data, TokenDtype dtype, int64_t start, int64_t n, Out* out) {
  if (dtype == TokenDtype::kUInt16) {
    const auto* p = static_cast<const uint16_t*>(data) + start;
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<Out>(p[i]);
  } else {
    const auto* p = static_cast<const uint32_t*>(data) + start;
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<Out>(p[i]);
  }
}

}  // namespace

void TokenFile::check_ids_below(int64_t vocab_size) const {
  for (int64_t i = 0; i < count_; ++i)
    if (int64_t{at(i)} >= vocab_size)
      throw std::invalid_argument(path_ + ": token id " + std::to_string(at(i)) + " at position " +
                                  std::to_string(i) + " is outside the vocabulary of " +
                                  std::to_string(vocab_size) + " (ids 0.." +
                                  std::to_string(vocab_size - 1) + ")");
}

std::string TokenFile::identity() const {
  const size_t window = std::min<size_t>(bytes_, size_t{1} << 20);
  const auto* bytes = static_cast<const char*>(data_);
  Sha256 sha;
  sha.update(std::to_string(count_) + "\n");
  if (window > 0) {
    sha.update(std::string_view(bytes, window));
    sha.update(std::string_view(bytes + bytes_ - window, window));
  }
  return sha.hex_digest();
}

void TokenFile::read(int64_t start, int64_t n, int64_t* out) const {
  if (start < 0 || start + n > count_) throw std::out_of_range("token range outside " + path_);
  copy_tokens(data_, dtype_, start, n, out);
}

void TokenFile::read(int64_t start, int64_t n, TokenId* out) const {
  if (start < 0 || start + n > count_) throw std::out_of_range("token range outside " + path_);
  copy_tokens(data_, dtype_, start, n, out);
}

TokenFileWriter::TokenFileWriter(const std::string& path, TokenDtype dtype)
    : path_(path), dtype_(dtype) {
  file_ = std::fopen((path + ".tmp").c_str(), "wb");
  if (!file_) throw std::runtime_error("cannot write " + path + ".tmp: " + std::strerror(errno));
}

TokenFileWriter::~TokenFileWriter() {
  if (file_) {  // never finished: leave nothing behind
    std::fclose(file_);
    std::remove((path_ + ".tmp").c_str());
  }
}

void TokenFileWriter::append(const std::vector<TokenId>& ids) {
  const size_t width = bytes_per_token(dtype_);
  buffer_.resize(ids.size() * width);
  for (size_t i = 0; i < ids.size(); ++i) {
    uint32_t v = static_cast<uint32_t>(ids[i]);
    if (width == 2 && v > 0xFFFF) throw std::overflow_error("token id does not fit uint16");
    for (size_t b = 0; b < width; ++b)
      buffer_[i * width + b] = static_cast<unsigned char>(v >> (8 * b));
  }
  if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size())
    throw std::runtime_error("short write to " + path_ + ".tmp");
  count_ += static_cast<int64_t>(ids.size());
}

int64_t TokenFileWriter::finish() {
  if (std::fflush(file_) != 0 || ::fsync(fileno(file_)) != 0)
    throw std::runtime_error("cannot flush " + path_ + ".tmp");
  std::fclose(file_);
  file_ = nullptr;
  std::filesystem::rename(path_ + ".tmp", path_);
  return count_;
}

}  // namespace qkv
