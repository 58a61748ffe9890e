#include "qkv/train/fine_tuning.h"

#include <cstring>

namespace qkv {

Checkpoint adopt_init_from(Config& config, const std::vector<std::string>& overrides) {
  if (config.train.init_from.empty()) return {};
  std::string shorter_context;  // the one model key a fine-tuning run may set
  for (const auto& o : overrides) {
    if (o.rfind("model.block_size=", 0) == 0) {
      shorter_context = o;
      continue;
    }
    for (const char* fixed : {"model.", "tokenizer."})
      if (o.rfind(fixed, 0) == 0)
        throw ConfigError::in_override(
            o, std::string(fixed, std::strlen(fixed) - 1) + " keys come from train.init_from (" +
                   config.train.init_from + "), whose weights were trained with them");
  }
  const int64_t block_size = config.model.block_size;
  auto source = Checkpoint::load(config.train.init_from);
  config.model = source.config.model;
  config.tokenizer = source.config.tokenizer;
  // A shorter context keeps the first positions' embeddings (nanoGPT's crop_block_size).
  if (!shorter_context.empty()) {
    if (block_size > source.config.model.block_size)
      throw ConfigError::in_override(shorter_context,
                                     "at most the context of train.init_from (" +
                                         std::to_string(source.config.model.block_size) + ")");
    config.model.block_size = block_size;
  }
  return source;
}

}  // namespace qkv
