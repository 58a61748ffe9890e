#include "qkv/data/file_bytes.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace qkv {

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace qkv
