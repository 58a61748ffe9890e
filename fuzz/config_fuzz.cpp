// The config loader on arbitrary YAML: a ConfigError, or a config that validates or says why not.
#include <cstddef>
#include <cstdint>
#include <string>

#include "qkv/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto config = qkv::Config::parse(text, "fuzz.yaml");
    config.validate();
    const std::string resolved = config.to_yaml();
    // What qkv writes into a run must read back as the same config.
    if (qkv::Config::parse(resolved, "resolved").to_yaml() != resolved) __builtin_trap();
  } catch (const qkv::ConfigError&) {
  }
  return 0;
}
