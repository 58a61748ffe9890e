#include "qkv/train/fine_tuning.h"

#include <cstring>

namespace qkv {

Checkpoint adopt_init_from(Config& config, const std::vector<std::string>& overrides) {
  if (config.train.init_from.empty()) return {};
  for (const auto& o : overrides)
    for (const char* fixed : {"model.", "tokenizer."})
      if (o.rfind(fixed, 0) == 0)
        throw ConfigError::in_override(
            o, std::string(fixed, std::strlen(fixed) - 1) + " keys come from train.init_from (" +
                   config.train.init_from + "), whose weights were trained with them");
  auto source = Checkpoint::load(config.train.init_from);
  config.model = source.config.model;
  config.tokenizer = source.config.tokenizer;
  return source;
}

}  // namespace qkv
