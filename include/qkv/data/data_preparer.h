#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "qkv/config/config.h"
#include "qkv/data/token_file.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

// A data directory without meta.json: prepare_data has not run for it (or not to the end).
class DataNotPrepared : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A data.files pattern that matches no file.
class DataFilesNotFound : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// What prepare_data wrote into a data directory, read back from its meta.json.
struct DatasetMeta {
  std::string dir;
  std::string tokenizer_kind;
  int64_t vocab_size = 0;
  TokenDtype dtype = TokenDtype::kUInt16;
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  int64_t train_bytes = 0;
  int64_t val_bytes = 0;
  std::string train_identity, val_identity;  // TokenFile::identity() when written

  // Throws DataNotPrepared when meta.json is missing, std::invalid_argument naming a bad file.
  static DatasetMeta load(const std::string& dir);
  std::string train_path() const { return dir + "/train.bin"; }
  std::string val_path() const { return dir + "/val.bin"; }
  std::string tokenizer_path() const { return dir + "/tokenizer.qkv"; }
  std::unique_ptr<Tokenizer> load_tokenizer() const;

  // Opens train.bin or val.bin ("train" or "val") after checking it is the file meta.json
  // describes (token count and identity) and that every id lies inside the vocabulary; throws
  // std::invalid_argument naming the file otherwise.
  std::shared_ptr<TokenFile> open_checked(const std::string& split) const;
};

struct PrepareResult {
  bool up_to_date = false;  // nothing was done: meta.json matched the inputs
  DatasetMeta meta;
  double encode_seconds = 0;
  int64_t bytes_encoded = 0;
};

// Called while encoding with (bytes done, bytes total).
using ProgressCallback = std::function<void(int64_t, int64_t)>;

// Tokenizes the configured text files into train.bin / val.bin + meta.json under data.dir.
// The validation split is the last data.val_fraction of each file. Streams in chunks that end
// at a newline, so memory stays bounded whatever the corpus size. Skips all work when the
// sources (by sha256) and tokenizer settings match what meta.json records.
// With `tokenizer` (fine-tuning: the source run's), that tokenizer encodes the text instead of one
// built from the tokenizer section.
PrepareResult prepare_data(const Config& config, const ProgressCallback& progress = {},
                           const Tokenizer* tokenizer = nullptr);

// Expands data.files (paths or globs) to existing files, sorted; throws DataFilesNotFound naming
// the pattern that matches nothing.
std::vector<std::string> resolve_data_files(const std::vector<std::string>& patterns);

}  // namespace qkv
