// Built as a MODULE and loaded into its own link namespace: see sentencepiece_plugin_api.h.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "qkv/tokenizer/sentencepiece_plugin_api.h"

namespace {

void set_error(char* err, int cap, const std::string& message) {
  if (!err || cap <= 0) return;
  std::strncpy(err, message.c_str(), cap - 1);
  err[cap - 1] = '\0';
}

int copy_out(const std::string& s, char* out, int cap) {
  if (static_cast<int>(s.size()) <= cap) std::memcpy(out, s.data(), s.size());
  return static_cast<int>(s.size());
}

sentencepiece::SentencePieceProcessor* processor(void* h) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(h);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int qkv_spm_train(const char* const* keys,
                                                         const char* const* values, int n,
                                                         char* err, int err_cap) {
  try {
    std::unordered_map<std::string, std::string> kwargs;
    for (int i = 0; i < n; ++i) kwargs[keys[i]] = values[i];
    auto status = sentencepiece::SentencePieceTrainer::Train(kwargs);
    if (!status.ok()) {
      set_error(err, err_cap, status.ToString());
      return -1;
    }
    return 0;
  } catch (const std::exception& e) {
    set_error(err, err_cap, e.what());
    return -1;
  }
}

__attribute__((visibility("default"))) void* qkv_spm_load(const char* bytes, int size, char* err,
                                                          int err_cap) {
  auto* p = new sentencepiece::SentencePieceProcessor();
  auto status = p->LoadFromSerializedProto(std::string(bytes, size));
  if (!status.ok()) {
    set_error(err, err_cap, status.ToString());
    delete p;
    return nullptr;
  }
  return p;
}

__attribute__((visibility("default"))) void qkv_spm_free(void* h) {
  delete processor(h);
}

__attribute__((visibility("default"))) int qkv_spm_vocab_size(void* h) {
  return processor(h)->GetPieceSize();
}

__attribute__((visibility("default"))) int qkv_spm_special_id(void* h, int which) {
  auto* p = processor(h);
  switch (which) {
    case 0:
      return p->unk_id();
    case 1:
      return p->bos_id();
    case 2:
      return p->eos_id();
    case 3:
      return p->pad_id();
    default:
      return -1;
  }
}

__attribute__((visibility("default"))) int qkv_spm_encode(void* h, const char* text, int size,
                                                          int* ids, int cap) {
  std::vector<int> out;
  if (!processor(h)->Encode(std::string(text, size), &out).ok()) return -1;
  if (static_cast<int>(out.size()) <= cap) std::memcpy(ids, out.data(), out.size() * sizeof(int));
  return static_cast<int>(out.size());
}

__attribute__((visibility("default"))) int qkv_spm_decode(void* h, const int* ids, int n, char* out,
                                                          int cap) {
  std::string text;
  if (!processor(h)->Decode(std::vector<int>(ids, ids + n), &text).ok()) return -1;
  return copy_out(text, out, cap);
}

__attribute__((visibility("default"))) int qkv_spm_id_to_piece(void* h, int id, char* out,
                                                               int cap) {
  auto* p = processor(h);
  if (id < 0 || id >= p->GetPieceSize()) return -1;
  return copy_out(p->IdToPiece(id), out, cap);
}

}  // extern "C"
