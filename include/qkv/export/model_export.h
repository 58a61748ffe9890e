#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace qkv {

struct Checkpoint;

class ExportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ExportFormat {
  kSafetensors,  // qkv's own parameter names, its config and tokenizer: qkv reads it back
  kHuggingFace,  // GPT-2's layout: transformers loads it as GPT2LMHeadModel
};

// "safetensors" or "hf"; throws std::invalid_argument naming the expected values.
ExportFormat export_format_from_string(const std::string& name);

// What an export wrote and what a user should know about it.
struct ExportResult {
  std::string dir;
  std::vector<std::string> files;
  std::vector<std::string> notes;  // e.g. why a tied matrix was written twice
};

// Writes the checkpoint's model to `out_dir`, which must not exist or be empty. The files are
// written into a temporary sibling directory that is renamed to `out_dir` at the end, so a failed
// or interrupted export leaves no half-written directory. Throws ExportError with one line when
// the model cannot be mapped exactly onto the format.
ExportResult export_model(const Checkpoint& checkpoint, ExportFormat format,
                          const std::string& out_dir);

// Throws ExportError unless `out_dir` is free for an export (absent, or an empty directory):
// export_model checks it too, this lets a caller fail before loading a large checkpoint.
void check_export_target(const std::string& out_dir);

namespace detail {
// The files of one export (name -> bytes) written as described for export_model.
void write_export_directory(const std::string& out_dir,
                            const std::map<std::string, std::string>& files);
// The Hugging Face directory's files for `checkpoint`; notes receive what the user should know.
std::map<std::string, std::string> hugging_face_files(const Checkpoint& checkpoint,
                                                      std::vector<std::string>* notes);
}  // namespace detail

}  // namespace qkv
