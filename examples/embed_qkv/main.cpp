// Loads a qkv checkpoint (a .pt file, a run directory or a safetensors export) and continues a
// prompt: qkv as a library inside another program.
//   embed_qkv CHECKPOINT [PROMPT] [TOKENS]
#include <cstdlib>
#include <iostream>

#include "qkv/generate/text_generator.h"
#include "qkv/train/checkpoint.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: embed_qkv CHECKPOINT [PROMPT] [TOKENS]\n";
    return 2;
  }
  const std::string prompt = argc > 2 ? argv[2] : "";
  // A SentencePiece checkpoint needs qkv's plugin; the package says where it was installed.
  setenv("QKV_SENTENCEPIECE_PLUGIN", QKV_SENTENCEPIECE_PLUGIN_PATH, /*overwrite=*/0);
  try {
    qkv::Checkpoint ckpt = qkv::Checkpoint::load(argv[1]);
    ckpt.model->eval();
    qkv::GenerationOptions options;
    options.max_new_tokens = argc > 3 ? std::atoi(argv[3]) : 100;
    options.validate();
    qkv::TextGenerator generator(ckpt.model, *ckpt.tokenizer);
    const auto result = generator.generate(ckpt.tokenizer->encode_from(prompt, "prompt"), options);
    std::cout << prompt << result.text << "\n";
    std::cerr << "embed_qkv: " << result.tokens.size() << " tokens from " << ckpt.path << " (step "
              << ckpt.state.step << ")\n";
  } catch (const std::exception& e) {
    std::cerr << "embed_qkv: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
