#include "qkv/tokenizer/sentencepiece_tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "qkv/io/file_bytes.h"
#include "qkv/tokenizer/sentencepiece_plugin_api.h"

namespace qkv {

namespace {

constexpr const char* kPluginName = "libqkv_sentencepiece.so";

// The plugin's entry points, resolved once. dlmopen(LM_ID_NEWLM) gives SentencePiece and its
// bundled protobuf 3.14 a link namespace of their own, away from LibTorch's protobuf 3.21.
struct Plugin {
  std::string path;
  decltype(&qkv_spm_train) train = nullptr;
  decltype(&qkv_spm_load) load = nullptr;
  decltype(&qkv_spm_free) free = nullptr;
  decltype(&qkv_spm_vocab_size) vocab_size = nullptr;
  decltype(&qkv_spm_special_id) special_id = nullptr;
  decltype(&qkv_spm_encode) encode = nullptr;
  decltype(&qkv_spm_decode) decode = nullptr;
  decltype(&qkv_spm_id_to_piece) id_to_piece = nullptr;
};

std::vector<std::string> candidate_paths() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("QKV_SENTENCEPIECE_PLUGIN")) paths.push_back(env);
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    paths.push_back((exe.parent_path() / kPluginName).string());
    paths.push_back((exe.parent_path() / "../lib/qkv" / kPluginName).string());
  }
  paths.push_back(std::string(QKV_PLUGIN_BUILD_DIR) + "/" + kPluginName);
  paths.push_back(std::string(QKV_PLUGIN_INSTALL_DIR) + "/" + kPluginName);
  return paths;
}

const Plugin& plugin() {
  static Plugin p;
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
#if defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer aborts the whole process inside dlmopen ("Shadow memory range interleaves
    // with an existing memory mapping"); an error is better than an abort.
    failure =
        "SentencePiece is not available in an AddressSanitizer build (its plugin is loaded "
        "with dlmopen, which ASan cannot follow)";
    return;
#endif
    std::string tried;
    for (const auto& path : candidate_paths()) {
      if (!std::filesystem::exists(path)) {
        tried += " " + path;
        continue;
      }
      void* lib = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!lib) {
        failure = std::string("cannot load SentencePiece plugin ") + path + ": " + dlerror();
        return;
      }
      auto sym = [&](auto& fn, const char* name) {
        fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
        if (!fn) failure = path + " lacks symbol " + name;
      };
      sym(p.train, "qkv_spm_train");
      sym(p.load, "qkv_spm_load");
      sym(p.free, "qkv_spm_free");
      sym(p.vocab_size, "qkv_spm_vocab_size");
      sym(p.special_id, "qkv_spm_special_id");
      sym(p.encode, "qkv_spm_encode");
      sym(p.decode, "qkv_spm_decode");
      sym(p.id_to_piece, "qkv_spm_id_to_piece");
      p.path = path;
      return;
    }
    failure = "SentencePiece plugin " + std::string(kPluginName) +
              " not found (set QKV_SENTENCEPIECE_PLUGIN); looked at:" + tried;
  });
  if (!failure.empty()) throw std::runtime_error(failure);
  return p;
}

}  // namespace

std::string sentencepiece_plugin_path() {
  return plugin().path;
}

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_bytes)
    : model_bytes_(model_bytes) {
  char err[512] = {0};
  handle_ =
      plugin().load(model_bytes_.data(), static_cast<int>(model_bytes_.size()), err, sizeof err);
  if (!handle_) throw std::invalid_argument(std::string("invalid SentencePiece model: ") + err);
  vocab_size_ = plugin().vocab_size(handle_);
  special_.unk = plugin().special_id(handle_, 0);
  special_.bos = plugin().special_id(handle_, 1);
  special_.eos = plugin().special_id(handle_, 2);
  special_.pad = plugin().special_id(handle_, 3);
}

SentencePieceTokenizer::SentencePieceTokenizer(SentencePieceTokenizer&& other) noexcept
    : model_bytes_(std::move(other.model_bytes_)),
      handle_(other.handle_),
      vocab_size_(other.vocab_size_),
      special_(other.special_) {
  other.handle_ = nullptr;
}

SentencePieceTokenizer::~SentencePieceTokenizer() {
  if (handle_) plugin().free(handle_);
}

SentencePieceTokenizer SentencePieceTokenizer::train(const SentencePieceTrainOptions& o,
                                                     const std::string& work_dir) {
  if (o.input_files.empty())
    throw std::invalid_argument("no input files to train SentencePiece on");
  std::filesystem::create_directories(work_dir);
  const std::string prefix = work_dir + "/sentencepiece";
  std::string inputs;
  for (const auto& f : o.input_files) inputs += (inputs.empty() ? "" : ",") + f;
  const unsigned threads =
      o.num_threads > 0 ? o.num_threads : std::max(1u, std::thread::hardware_concurrency());
  // Text is kept exactly as it is so that decode(encode(x)) == x byte for byte: no
  // normalisation, no whitespace clean-up, no dummy leading space, and the newline (which the
  // trainer never sees, as it reads line by line) as a piece of its own.
  const std::vector<std::pair<std::string, std::string>> options = {
      {"input", inputs},
      {"model_prefix", prefix},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"model_type", o.model_type},
      {"character_coverage", std::to_string(o.character_coverage)},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      {"input_sentence_size", std::to_string(o.input_sentence_size)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(threads)},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"user_defined_symbols", "\n"},
      {"split_digits", "true"},
      {"max_sentence_length", "16384"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"minloglevel", "2"}};
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : options) keys.push_back(k.c_str()), values.push_back(v.c_str());
  char err[1024] = {0};
  if (plugin().train(keys.data(), values.data(), static_cast<int>(keys.size()), err, sizeof err) !=
      0)
    throw std::runtime_error(std::string("SentencePiece training failed: ") + err);
  return SentencePieceTokenizer(read_file_bytes(prefix + ".model"));
}

SentencePieceTokenizer SentencePieceTokenizer::load_model_file(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw std::invalid_argument("SentencePiece model file not found: " + path);
  return SentencePieceTokenizer(read_file_bytes(path));
}

std::vector<TokenId> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<TokenId> ids(text.size() + 16);
  int n = plugin().encode(handle_, text.data(), static_cast<int>(text.size()), ids.data(),
                          static_cast<int>(ids.size()));
  if (n < 0) throw std::runtime_error("SentencePiece could not encode the text");
  if (n > static_cast<int>(ids.size())) {
    ids.resize(n);
    n = plugin().encode(handle_, text.data(), static_cast<int>(text.size()), ids.data(), n);
  }
  ids.resize(n);
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<TokenId>& ids) const {
  for (TokenId id : ids)
    if (id < 0 || id >= vocab_size_)
      throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocabulary of " +
                              std::to_string(vocab_size_));
  std::string out(ids.size() * 8 + 16, '\0');
  int n = plugin().decode(handle_, ids.data(), static_cast<int>(ids.size()), out.data(),
                          static_cast<int>(out.size()));
  if (n < 0) throw std::runtime_error("SentencePiece could not decode the ids");
  if (n > static_cast<int>(out.size())) {
    out.resize(n);
    n = plugin().decode(handle_, ids.data(), static_cast<int>(ids.size()), out.data(), n);
  }
  out.resize(n);
  return out;
}

std::string SentencePieceTokenizer::piece(TokenId id) const {
  std::string out(64, '\0');
  int n = plugin().id_to_piece(handle_, id, out.data(), static_cast<int>(out.size()));
  if (n < 0)
    throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocabulary of " +
                            std::to_string(vocab_size_));
  if (n > static_cast<int>(out.size())) {
    out.resize(n);
    n = plugin().id_to_piece(handle_, id, out.data(), n);
  }
  out.resize(n);
  return out;
}

}  // namespace qkv
