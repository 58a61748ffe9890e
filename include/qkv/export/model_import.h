#pragma once

#include <string>

namespace qkv {

struct Checkpoint;

// A Hugging Face GPT2LMHeadModel directory (config.json, model.safetensors, and GPT-2's
// tokenizer: vocab.json and merges.txt, or tokenizer.json) as a qkv checkpoint: the inverse of
// the "hf" export. c_attn splits into W^Q, W^K, W^V; Conv1D's (in, out) weights are transposed;
// positions are learned (wpe); GELU is GPT-2's tanh form where config.json says gelu_new; token
// embeddings are not scaled. Throws ExportError (model_export.h) with one line naming the file
// and what was expected when the directory cannot be mapped exactly: another architecture, no
// model.safetensors (pytorch_model.bin is not read), a missing or extra tensor, a shape that
// disagrees with the config, a setting qkv's model does not have.
Checkpoint import_hugging_face_gpt2(const std::string& dir);

// Writes `checkpoint` as a run directory qkv's commands accept: `run_dir`/best.pt and
// config.yaml. `run_dir` must not exist or be empty; nothing is written when it is not.
void write_imported_run(const Checkpoint& checkpoint, const std::string& run_dir);

}  // namespace qkv
