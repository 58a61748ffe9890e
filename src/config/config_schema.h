#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>
#include <vector>

#include "qkv/config/config.h"

namespace qkv {

// One configuration key: how to read it from YAML (throwing std::invalid_argument with what was
// expected) and how to write it back.
struct ConfigField {
  std::string key;  // "section.key"
  std::function<void(Config&, const YAML::Node&)> set;
  std::function<void(const Config&, YAML::Emitter&)> emit;
};

const std::vector<ConfigField>& config_schema();

}  // namespace qkv
