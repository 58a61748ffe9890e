#pragma once

#include <string>
#include <vector>

#include "qkv/config/config.h"
#include "qkv/train/checkpoint.h"

namespace qkv {

// Fine-tuning (nanoGPT's init_from): a fresh run whose weights start from the checkpoint
// config.train.init_from names (a run directory, a checkpoint file, or an export), with a fresh
// optimizer and schedule. The weights fit only the model and tokenizer they were trained with,
// so the source's model.* and tokenizer.* replace the config's; an override of either (in
// `overrides`, the ones applied to `config`) is refused with ConfigError naming it, except a
// shorter model.block_size (the positions beyond it are dropped, as nanoGPT's crop_block_size).
// Returns the
// source checkpoint: its tokenizer prepares the data (prepare_data's `tokenizer`), and the
// Trainer loads its weights. Without init_from, changes nothing and returns an empty Checkpoint.
Checkpoint adopt_init_from(Config& config, const std::vector<std::string>& overrides);

}  // namespace qkv
