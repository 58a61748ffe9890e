#pragma once

#include <string>

#include "qkv/train/checkpoint.h"

namespace qkv {

// qkv's safetensors export (ExportFormat::kSafetensors, export/model_export.h): these three files
// in one directory, which every command that reads a checkpoint also reads.
constexpr const char* kWeightsFile = "model.safetensors";  // every parameter, qkv's names
constexpr const char* kConfigFile = "config.yaml";         // the resolved config
constexpr const char* kTokenizerFile = "tokenizer.qkv";    // the tokenizer

// Whether `dir` holds qkv's safetensors export (model.safetensors beside config.yaml).
bool is_safetensors_export(const std::string& dir);

// A safetensors export read back: the model, config, tokenizer and step; no optimizer state.
// Throws CheckpointError naming the file and what is wrong.
Checkpoint load_safetensors_export(const std::string& dir);

}  // namespace qkv
