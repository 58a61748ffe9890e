#pragma once

// The C interface between qkv and its SentencePiece plugin. Only plain C types cross it: the
// plugin lives in its own dynamic-linker namespace (dlmopen) with its own C++ runtime and its
// own protobuf, so no std:: object may pass from one side to the other.
//
// Sizes are in bytes or ids. Functions that fill a buffer return the size they need; when it is
// larger than the capacity given, nothing useful was written and the caller retries bigger.
// Errors: a negative return (or null handle) and a message in `err`.

#ifdef __cplusplus
extern "C" {
#endif

// Trains a model from SentencePiece trainer options given as n key/value pairs
// ("input" -> "a.txt,b.txt", "vocab_size" -> "1024", ...). Pairs rather than a flag string so
// that values may hold any character: "user_defined_symbols" -> "\n" in particular.
int qkv_spm_train(const char* const* keys, const char* const* values, int n, char* err,
                  int err_cap);

void* qkv_spm_load(const char* model_bytes, int size, char* err, int err_cap);
void qkv_spm_free(void* handle);
int qkv_spm_vocab_size(void* handle);
// which: 0 unk, 1 bos, 2 eos, 3 pad. -1 when the model has none.
int qkv_spm_special_id(void* handle, int which);
int qkv_spm_encode(void* handle, const char* text, int size, int* ids, int cap);
int qkv_spm_decode(void* handle, const int* ids, int n, char* out, int cap);
int qkv_spm_id_to_piece(void* handle, int id, char* out, int cap);

#ifdef __cplusplus
}
#endif
