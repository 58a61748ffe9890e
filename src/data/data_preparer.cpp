#include "qkv/data/data_preparer.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include <spdlog/spdlog.h>

#include "qkv/data/json_integer.h"
#include "qkv/data/parallel_encoder.h"
#include "qkv/data/sense_corpus.h"
#include "qkv/data/text_chunk_reader.h"
#include "qkv/io/sha256.h"
#include "qkv/tokenizer/byte_level_bpe_tokenizer.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "qkv/tokenizer/sentencepiece_tokenizer.h"
#include "qkv/tokenizer/word_tokenizer.h"

namespace qkv {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// 2: meta.json records each token file's identity.
constexpr int kFormatVersion = 2;
// Where a file's validation part starts: the last val_fraction of its bytes, moved forward to
// the start of a UTF-8 character (for ASCII, nanoGPT's int(n * 0.9) split exactly), or with
// `at_line` to the start of a line (a word tokenizer must not see half a word).
int64_t split_point(const std::string& path, int64_t size, double val_fraction, bool at_line) {
  auto split = static_cast<int64_t>(static_cast<double>(size) * (1.0 - val_fraction));
  std::ifstream in(path, std::ios::binary);
  in.seekg(split - (at_line && split > 0 ? 1 : 0));
  char c;
  if (at_line) {
    if (split > 0 && in.get(c) && c == '\n') return split;  // a line starts here already
    while (split < size && in.get(c) && c != '\n') ++split;
    return std::min(split + 1, size);
  }
  while (split < size && in.get(c) && (static_cast<unsigned char>(c) & 0xC0) == 0x80) ++split;
  return split;
}

// Held while this process prepares a data directory (flock on DIR/.prepare.lock, released when
// the process ends however it ends): two preparers of one directory would share its temporary
// file names.
class PrepareLock {
 public:
  explicit PrepareLock(const std::string& dir) {
    const std::string path = dir + "/.prepare.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
    spdlog::info("waiting for another process preparing {}", dir);
    while (::flock(fd_, LOCK_EX) != 0)
      if (errno != EINTR)
        throw std::runtime_error("cannot lock " + path + ": " + std::strerror(errno));
  }
  ~PrepareLock() { ::close(fd_); }
  PrepareLock(const PrepareLock&) = delete;
  PrepareLock& operator=(const PrepareLock&) = delete;

 private:
  int fd_ = -1;
};

// The corpus read must be the one hashed before it: a file rewritten, cut, grown or replaced
// while it was being encoded would pair one file's hash with another's tokens. The token files
// of such a read are removed, and no meta.json says the directory is prepared.
void check_sources_unchanged(const json& before, const json& after, const std::string& dir) {
  for (size_t i = 0; i < before["sources"].size(); ++i) {
    const auto &b = before["sources"][i], &a = after["sources"][i];
    if (a == b) continue;
    for (const char* name : {"train.bin", "val.bin"}) fs::remove(dir + "/" + name);
    const auto size = [](const json& source) {
      return std::to_string(source["size"].get<int64_t>());
    };
    const std::string what =
        a["size"] == b["size"] ? "its contents changed" : size(b) + " bytes, now " + size(a);
    throw std::invalid_argument("data.files: " + b["path"].get<std::string>() +
                                " changed while it was being prepared (" + what +
                                "); prepare again once it is complete");
  }
}

json fingerprint(const Config& config, const std::vector<std::string>& files,
                 const Tokenizer* given) {
  json sources = json::array();
  for (const auto& f : files)
    sources.push_back({{"path", f},
                       {"size", static_cast<int64_t>(fs::file_size(f))},
                       {"sha256", Sha256::of_file(f)}});
  const auto& t = config.tokenizer;
  json tok = {{"kind", t.kind}};
  if (given) {  // fine-tuning: the source run's tokenizer, by its bytes
    Sha256 sha;
    sha.update(tokenizer_file_bytes(*given));
    tok["given_sha256"] = sha.hex_digest();
  }
  if (t.kind == "bpe") tok["model_file"] = t.model_file;
  if (t.kind == "sentencepiece") {
    if (!t.model_file.empty()) {
      tok["model_file"] = t.model_file;
      tok["model_sha256"] = Sha256::of_file(t.model_file);
    } else {
      tok.update({{"vocab_size", t.vocab_size},
                  {"model_type", t.model_type},
                  {"character_coverage", t.character_coverage},
                  {"byte_fallback", t.byte_fallback},
                  {"input_sentence_size", t.input_sentence_size}});
    }
  }
  return {{"format", kFormatVersion},
          {"sources", sources},
          {"tokenizer", tok},
          {"val_fraction", config.data.val_fraction}};
}

// Every chunk of every file (chunks end at a newline) with its byte offset in the file.
void for_each_chunk(const std::vector<std::string>& files,
                    const std::function<void(const std::string& file, const std::string& chunk,
                                             int64_t offset)>& visit) {
  for (const auto& f : files) {
    TextChunkReader reader(f, 0, static_cast<int64_t>(fs::file_size(f)));
    std::string chunk;
    for (int64_t offset = 0; reader.next(&chunk); offset += static_cast<int64_t>(chunk.size()))
      visit(f, chunk, offset);
  }
}

std::unique_ptr<Tokenizer> build_tokenizer(const Config& config,
                                           const std::vector<std::string>& files,
                                           const std::string& dir) {
  const auto& t = config.tokenizer;
  if (t.kind == "char") {
    CharTokenizer::VocabularyBuilder builder;
    for_each_chunk(files, [&](const std::string& f, const std::string& chunk, int64_t offset) {
      try {
        builder.add(chunk);
      } catch (const std::invalid_argument& e) {  // the error names the byte in the file
        throw std::invalid_argument(
            f + ": expected UTF-8 text: " + e.what() +
            (offset > 0 ? " (counted from byte " + std::to_string(offset) + ")" : ""));
      }
    });
    return std::make_unique<CharTokenizer>(builder.build());
  }
  if (t.kind == "word") {
    WordTokenizer::VocabularyBuilder builder;
    for_each_chunk(
        files, [&](const std::string&, const std::string& chunk, int64_t) { builder.add(chunk); });
    return std::make_unique<WordTokenizer>(builder.build());
  }
  if (t.kind == "bpe") {  // GPT-2's: read, never trained here
    if (t.model_file.empty())
      throw std::invalid_argument(
          "tokenizer.model_file must name a directory with GPT-2's vocab.json and merges.txt (or "
          "tokenizer.json) when tokenizer.kind is bpe");
    return std::make_unique<ByteLevelBpeTokenizer>(
        ByteLevelBpeTokenizer::from_directory(t.model_file));
  }
  if (!t.model_file.empty())
    return std::make_unique<SentencePieceTokenizer>(
        SentencePieceTokenizer::load_model_file(t.model_file));
  SentencePieceTrainOptions o;
  o.input_files = files;
  o.vocab_size = static_cast<int>(t.vocab_size);
  o.model_type = t.model_type;
  o.character_coverage = t.character_coverage;
  o.byte_fallback = t.byte_fallback;
  o.input_sentence_size = t.input_sentence_size;
  o.num_threads = static_cast<int>(config.runtime.threads);
  return std::make_unique<SentencePieceTokenizer>(SentencePieceTokenizer::train(o, dir));
}

}  // namespace

std::vector<std::string> resolve_data_files(const std::vector<std::string>& patterns) {
  std::vector<std::string> files;
  for (const auto& pattern : patterns) {
    glob_t g{};
    int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
    size_t found = 0;
    if (rc == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i)
        if (fs::is_regular_file(g.gl_pathv[i])) files.push_back(g.gl_pathv[i]), ++found;
    globfree(&g);
    if (found == 0) throw DataFilesNotFound("data.files: no file matches '" + pattern + "'");
  }
  return files;
}

DatasetMeta DatasetMeta::load(const std::string& dir) {
  const std::string path = dir + "/meta.json";
  std::ifstream in(path);
  if (!in) throw DataNotPrepared(path + " not found: the data is not prepared");
  json j;
  try {
    j = json::parse(in);
    DatasetMeta m;
    m.dir = dir;
    m.tokenizer_kind = j.at("tokenizer").at("kind").get<std::string>();
    m.vocab_size = json_integer(j.at("tokenizer"), "vocab_size");
    m.dtype = token_dtype_from_string(j.at("dtype").get<std::string>());
    m.train_tokens = json_integer(j, "train_tokens");
    m.val_tokens = json_integer(j, "val_tokens");
    m.train_bytes = json_integer(j, "train_bytes");
    m.val_bytes = json_integer(j, "val_bytes");
    m.train_identity = j.value("train_identity", "");
    m.val_identity = j.value("val_identity", "");
    if (m.vocab_size < 1 || m.vocab_size > (int64_t{1} << 32) || m.train_tokens < 0 ||
        m.val_tokens < 0 || m.train_bytes < 0 || m.val_bytes < 0)
      throw std::invalid_argument("a size is out of range");
    return m;
  } catch (const json::exception& e) {
    throw std::invalid_argument(path + " is not valid dataset metadata: " + e.what());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + " is not valid dataset metadata: " + e.what());
  }
}

std::unique_ptr<Tokenizer> DatasetMeta::load_tokenizer() const {
  return load_tokenizer_file(tokenizer_path());
}

std::shared_ptr<TokenFile> DatasetMeta::open_checked(const std::string& split) const {
  const bool train = split == "train";
  const std::string path = train ? train_path() : val_path();
  const int64_t tokens = train ? train_tokens : val_tokens;
  const std::string& identity = train ? train_identity : val_identity;
  auto file = std::make_shared<TokenFile>(path, dtype);
  const std::string stranger =
      " (the file is not the one prepared with it: prepare the data again)";
  if (file->size() != tokens)
    throw std::invalid_argument(path + " holds " + std::to_string(file->size()) + " tokens but " +
                                dir + "/meta.json says " + std::to_string(tokens) + stranger);
  if (!identity.empty() && file->identity() != identity)
    throw std::invalid_argument(path + " does not match the identity " + dir +
                                "/meta.json records" + stranger);
  file->check_ids_below(vocab_size);
  return file;
}

PrepareResult prepare_data(const Config& config, const ProgressCallback& progress,
                           const Tokenizer* given) {
  const std::string dir = config.data.dir;
  if (config.data.generate == "senses") {
    if (config.data.files.size() != 1)
      throw std::invalid_argument("data.files: data.generate senses writes one file; got " +
                                  std::to_string(config.data.files.size()));
    write_sense_corpus_if_missing(config.data.files.front(),
                                  static_cast<uint64_t>(config.runtime.seed));
  }
  const auto files = resolve_data_files(config.data.files);
  int64_t total = 0;
  std::string names;
  for (const auto& f : files) {
    total += static_cast<int64_t>(fs::file_size(f));
    names += (names.empty() ? "" : ", ") + f;
  }
  if (total == 0)
    throw std::invalid_argument("data.files: " + names + ": no text to tokenize (empty)");
  const json print = fingerprint(config, files, given);

  PrepareResult result;
  const std::string meta_path = dir + "/meta.json";
  fs::create_directories(dir);
  const PrepareLock lock(dir);  // a second preparer waits here, then finds the result up to date
  if (fs::exists(meta_path) && fs::exists(dir + "/train.bin") && fs::exists(dir + "/val.bin")) {
    try {
      std::ifstream in(meta_path);
      if (json::parse(in).at("fingerprint") == print) {
        result.up_to_date = true;
        result.meta = DatasetMeta::load(dir);
        return result;
      }
    } catch (const std::exception&) {
      // unreadable metadata: prepare again
    }
  }
  fs::remove(meta_path);  // a run cut short must not look up to date

  auto tokenizer = given ? load_tokenizer(given->kind(), given->serialize())
                         : build_tokenizer(config, files, dir);
  // One token can only be followed by itself: a model "learns" it to loss 0 and nothing else.
  if (tokenizer->vocab_size() < 2)
    throw std::invalid_argument("data.files: " + names +
                                ": a vocabulary of one token; the text needs at least 2 "
                                "different characters to have anything to predict");
  const TokenDtype dtype = dtype_for_vocab(tokenizer->vocab_size());

  TokenFileWriter train(dir + "/train.bin", dtype), val(dir + "/val.bin", dtype);
  int64_t done = 0, train_bytes = 0, val_bytes = 0;
  const auto start = std::chrono::steady_clock::now();
  ParallelEncoderOptions encoding;
  encoding.threads = static_cast<int>(config.runtime.threads);
  for (const auto& f : files) {
    const auto size = static_cast<int64_t>(fs::file_size(f));
    const int64_t split =
        split_point(f, size, config.data.val_fraction, config.tokenizer.kind == "word");
    for (auto [begin, end, writer] :
         {std::tuple{int64_t{0}, split, &train}, std::tuple{split, size, &val}}) {
      encode_file_in_parallel(*tokenizer, f, begin, end, encoding,
                              [&, writer = writer](const std::vector<TokenId>& ids, int64_t bytes) {
                                writer->append(ids);
                                done += bytes;
                                if (progress) progress(done, total);
                              });
    }
    train_bytes += split;
    val_bytes += size - split;
  }
  result.encode_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.bytes_encoded = done;
  const int64_t train_tokens = train.finish(), val_tokens = val.finish();
  check_sources_unchanged(print, fingerprint(config, files, given), dir);
  const std::string train_identity = TokenFile(dir + "/train.bin", dtype).identity();
  const std::string val_identity = TokenFile(dir + "/val.bin", dtype).identity();
  save_tokenizer_file(*tokenizer, dir + "/tokenizer.qkv");

  json meta = {{"qkv_version", QKV_VERSION},
               {"tokenizer",
                {{"kind", tokenizer->kind()},
                 {"vocab_size", tokenizer->vocab_size()},
                 {"file", "tokenizer.qkv"}}},
               {"dtype", to_string(dtype)},
               {"train_tokens", train_tokens},
               {"val_tokens", val_tokens},
               {"train_bytes", train_bytes},
               {"val_bytes", val_bytes},
               {"train_identity", train_identity},
               {"val_identity", val_identity},
               {"val_fraction", config.data.val_fraction},
               {"sources", print["sources"]},
               {"fingerprint", print}};
  // meta.json goes last, through a rename: its presence means the directory is complete.
  {
    std::ofstream out(meta_path + ".tmp");
    out << meta.dump(2) << "\n";
  }
  fs::rename(meta_path + ".tmp", meta_path);
  result.meta = DatasetMeta::load(dir);
  return result;
}

}  // namespace qkv
