#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace qkv {

// The integer `key` of a JSON object, refused with std::invalid_argument unless it is an integer
// in int64's range: nlohmann's get<int64_t>() turns a float such as 4e89 into an integer by a
// cast whose overflow is undefined behaviour (found by fuzz/metrics_fuzz.cpp).
inline int64_t json_integer(const nlohmann::json& object, const std::string& key) {
  const auto& v = object.at(key);
  const bool fits =
      v.is_number_integer() && !(v.is_number_unsigned() &&
                                 v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()));
  if (!fits) throw std::invalid_argument(key + ": expected an integer, got " + v.dump());
  return v.get<int64_t>();
}

// The same, or `fallback` when the object lacks the key.
inline int64_t json_integer(const nlohmann::json& object, const std::string& key,
                            int64_t fallback) {
  return object.contains(key) ? json_integer(object, key) : fallback;
}

}  // namespace qkv
