#include "qkv/io/safetensors.h"

#include <cstring>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "qkv/io/file_bytes.h"

namespace qkv {

namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this writer copies memory as it is");

// The format caps the header at 100 MB; anything larger is not a safetensors file.
constexpr uint64_t kMaxHeader = 100'000'000;

uint64_t element_count(const std::vector<int64_t>& shape, const std::string& where) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw SafetensorsError(where + ": negative dimension " + std::to_string(d));
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / uint64_t(d))
      throw SafetensorsError(where + ": shape too large");
    n *= uint64_t(d);
  }
  return n;
}

// A JSON number that must be a whole non-negative integer.
uint64_t unsigned_value(const nlohmann::json& v, const std::string& where) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    throw SafetensorsError(where + ": expected a non-negative integer, got " + v.dump());
  return v.get<uint64_t>();
}

SafetensorsTensor parse_entry(const std::string& name, const nlohmann::json& entry,
                              std::string_view data, const std::string& where) {
  if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
      !entry.contains("data_offsets"))
    throw SafetensorsError(where + ": expected an object with dtype, shape and data_offsets");
  const auto& dtype = entry["dtype"];
  const auto& shape = entry["shape"];
  const auto& offsets = entry["data_offsets"];
  if (!dtype.is_string() || safetensors_dtype_size(dtype.get<std::string>()) == 0)
    throw SafetensorsError(where + ": unknown dtype " + dtype.dump());
  if (!shape.is_array()) throw SafetensorsError(where + ": shape is not an array");
  if (!offsets.is_array() || offsets.size() != 2)
    throw SafetensorsError(where + ": data_offsets is not [begin, end]");
  SafetensorsTensor t;
  t.name = name;
  t.dtype = dtype.get<std::string>();
  for (const auto& d : shape) {
    const uint64_t dim = unsigned_value(d, where + " shape");
    if (dim > uint64_t(std::numeric_limits<int64_t>::max()))
      throw SafetensorsError(where + ": dimension too large");
    t.shape.push_back(int64_t(dim));
  }
  const uint64_t begin = unsigned_value(offsets[0], where + " data_offsets");
  const uint64_t end = unsigned_value(offsets[1], where + " data_offsets");
  if (begin > end || end > data.size())
    throw SafetensorsError(where + ": data_offsets [" + std::to_string(begin) + ", " +
                           std::to_string(end) + "] lie outside the " +
                           std::to_string(data.size()) + " bytes of data");
  const uint64_t n = element_count(t.shape, where);
  const uint64_t size = safetensors_dtype_size(t.dtype);
  if (n > std::numeric_limits<uint64_t>::max() / size || n * size != end - begin)
    throw SafetensorsError(where + ": " + std::to_string(end - begin) +
                           " bytes do not hold its shape of " + std::to_string(n) + " " + t.dtype +
                           " values");
  t.bytes = data.substr(begin, end - begin);
  return t;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

std::string serialize_safetensors(const std::vector<SafetensorsTensor>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const auto& t : tensors) {
    const std::string where = "tensor '" + t.name + "'";
    if (t.name == "__metadata__" || !names.insert(t.name).second)
      throw SafetensorsError(where + ": name repeated or reserved");
    const size_t size = safetensors_dtype_size(t.dtype);
    if (size == 0) throw SafetensorsError(where + ": unknown dtype " + t.dtype);
    if (element_count(t.shape, where) * size != t.bytes.size())
      throw SafetensorsError(where + ": " + std::to_string(t.bytes.size()) +
                             " bytes do not match its shape");
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t length = json.size();
  std::memcpy(out.data(), &length, 8);
  out.reserve(8 + json.size() + offset);
  out += json;
  for (const auto& t : tensors) out.append(t.bytes.data(), t.bytes.size());
  return out;
}

SafetensorsFile SafetensorsFile::parse(std::string bytes, const std::string& origin) {
  SafetensorsFile file;
  file.bytes_ = std::make_unique<const std::string>(std::move(bytes));
  const std::string& all = *file.bytes_;
  if (all.size() < 8) throw SafetensorsError(origin + ": too short for a safetensors file");
  uint64_t length = 0;
  std::memcpy(&length, all.data(), 8);
  if (length > kMaxHeader || length > all.size() - 8)
    throw SafetensorsError(origin + ": header length " + std::to_string(length) +
                           " does not fit the file's " + std::to_string(all.size()) +
                           " bytes: not a safetensors file, or truncated");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(all.substr(8, length));
  } catch (const nlohmann::json::exception&) {
    throw SafetensorsError(origin + ": header is not JSON: not a safetensors file");
  }
  if (!header.is_object()) throw SafetensorsError(origin + ": header is not a JSON object");
  const std::string_view data = std::string_view(all).substr(8 + length);
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw SafetensorsError(origin + ": __metadata__ is not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          throw SafetensorsError(origin + ": __metadata__ value '" + key + "' is not a string");
        file.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    file.tensors_.push_back(parse_entry(name, entry, data, origin + ": tensor '" + name + "'"));
  }
  return file;
}

SafetensorsFile SafetensorsFile::read(const std::string& path) {
  try {
    return parse(read_file_bytes(path), path);
  } catch (const std::invalid_argument& e) {
    throw SafetensorsError(e.what());
  }
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace qkv
