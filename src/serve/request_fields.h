#pragma once

// A request body's fields, type-checked: the OpenAI request's parser and the page's endpoints
// read theirs through these, so every wrong field gets the same one-line 400.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qkv/serve/request_error.h"

namespace qkv::request {

[[noreturn]] inline void bad(const std::string& message) {
  throw RequestError(400, message);
}

// The field's value, or nullptr when it is absent or null (OpenAI's clients send null for unset).
inline const nlohmann::json* field(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

inline const nlohmann::json& required(const nlohmann::json& body, const char* key) {
  const nlohmann::json* v = field(body, key);
  if (!v) bad(std::string(key) + " is required");
  return *v;
}

inline int64_t integer(const nlohmann::json& v, const char* key) {
  if (!v.is_number_integer()) bad(std::string(key) + " must be an integer, got " + v.type_name());
  return v.get<int64_t>();
}
inline int64_t integer(const nlohmann::json& body, const char* key, int64_t fallback) {
  const nlohmann::json* v = field(body, key);
  return v ? integer(*v, key) : fallback;
}

inline double number(const nlohmann::json& body, const char* key, double fallback) {
  const nlohmann::json* v = field(body, key);
  if (!v) return fallback;
  if (!v->is_number()) bad(std::string(key) + " must be a number, got " + v->type_name());
  return v->get<double>();
}

inline bool boolean(const nlohmann::json& body, const char* key, bool fallback) {
  const nlohmann::json* v = field(body, key);
  if (!v) return fallback;
  if (!v->is_boolean()) bad(std::string(key) + " must be true or false, got " + v->type_name());
  return v->get<bool>();
}

inline std::string text(const nlohmann::json& v, const char* key) {
  if (!v.is_string()) bad(std::string(key) + " must be a string, got " + v.type_name());
  return v.get<std::string>();
}
inline std::string text(const nlohmann::json& body, const char* key, const std::string& fallback) {
  const nlohmann::json* v = field(body, key);
  return v ? text(*v, key) : fallback;
}

inline std::vector<std::string> texts(const nlohmann::json& body, const char* key) {
  const nlohmann::json* v = field(body, key);
  if (!v) return {};
  if (!v->is_array()) bad(std::string(key) + " must be an array of strings");
  std::vector<std::string> out;
  for (const auto& s : *v) {
    if (!s.is_string()) bad(std::string(key) + " must hold only strings");
    out.push_back(s.get<std::string>());
  }
  return out;
}

}  // namespace qkv::request
