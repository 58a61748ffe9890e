#include "qkv/train/checkpoint.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <torch/serialize/output-archive.h>

#include <spdlog/spdlog.h>

#include "qkv/io/file_bytes.h"
#include "qkv/io/sha256.h"
#include "qkv/train/checkpoint_meta.h"
#include "qkv/train/safetensors_checkpoint.h"

namespace qkv {

namespace fs = std::filesystem;

namespace {

// Text and binary blobs travel as uint8 tensors: the one archive type both LibTorch 1.13 and
// 2.x read and write the same way.
torch::Tensor bytes_tensor(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  if (!s.empty()) std::memcpy(t.data_ptr<uint8_t>(), s.data(), s.size());
  return t;
}

std::string tensor_bytes(const torch::Tensor& t) {
  auto c = t.contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), c.numel());
}

// The archive is followed by "\nqkv-sha256 <64 hex digits>\n", the digest of the archive's
// bytes: LibTorch's reader does not check the zip's CRCs, so without it a flipped byte in a
// tensor loads silently.
constexpr std::string_view kDigestTag = "\nqkv-sha256 ";
constexpr size_t kTrailerSize = kDigestTag.size() + 64 + 1;

std::string digest_trailer(const std::string& archive) {
  Sha256 sha;
  sha.update(archive);
  return std::string(kDigestTag) + sha.hex_digest() + "\n";
}

// The archive's bytes, checked against the digest written with them; `checked` is false for a
// file without one (written before checkpoints carried one).
std::string_view verified_archive(const std::string& path, const std::string& bytes,
                                  bool* checked) {
  const std::string_view all(bytes);
  const bool long_enough = bytes.size() >= kTrailerSize;
  const bool has_trailer = long_enough && bytes.back() == '\n' &&
                           all.substr(bytes.size() - kTrailerSize, kDigestTag.size()) == kDigestTag;
  // A zip ends with its end-of-directory record, never with a newline or 64 hex digits: a file
  // that does has a damaged trailer, not none.
  const auto digits = long_enough ? all.substr(bytes.size() - 65, 64) : std::string_view();
  const bool looks_trailed =
      long_enough && (bytes.back() == '\n' || std::all_of(digits.begin(), digits.end(), [](char c) {
                        return std::isxdigit(static_cast<unsigned char>(c)) != 0;
                      }));
  if (!has_trailer && looks_trailed)
    throw CheckpointError(path + ": corrupt: its checksum trailer is damaged");
  *checked = has_trailer;
  if (!has_trailer) return bytes;
  const std::string_view archive = std::string_view(bytes).substr(0, bytes.size() - kTrailerSize);
  Sha256 sha;
  sha.update(archive);
  if (std::string_view(bytes).substr(bytes.size() - kTrailerSize) !=
      std::string(kDigestTag) + sha.hex_digest() + "\n")
    throw CheckpointError(path +
                          ": corrupt: its contents do not match the SHA-256 written with it");
  return archive;
}

// Weights that are not numbers make every output NaN; refuse them where they enter.
void check_finite(const std::string& path, const TransformerLM& model) {
  torch::NoGradGuard no_grad;
  for (const auto& p : model->named_parameters())
    if (!torch::isfinite(p.value()).all().item<bool>())
      throw CheckpointError(path + ": parameter " + p.key() + " holds NaN or infinite values");
}

}  // namespace

std::string serialize_checkpoint(TransformerLM& model, torch::optim::Optimizer* optimizer,
                                 const Config& config, const std::string& tokenizer_kind,
                                 const std::string& tokenizer_bytes, const TrainingState& state) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  model->save(model_archive);
  archive.write("model", model_archive);
  if (optimizer) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  CheckpointMeta meta;
  meta.qkv_version = QKV_VERSION;
  meta.step = state.step;
  meta.best_val_loss = state.best_val_loss;
  meta.best_step = state.best_step;
  meta.sampler_state = state.sampler_state;
  meta.world_size = state.world_size;
  meta.tokenizer_kind = tokenizer_kind;
  meta.run_id = state.run_id;
  archive.write("meta", bytes_tensor(meta.to_json()));
  archive.write("config", bytes_tensor(config.to_yaml()));
  archive.write("tokenizer", bytes_tensor(tokenizer_bytes));
  if (state.torch_rng_state.defined()) archive.write("torch_rng", state.torch_rng_state);
  if (state.rank_rng_states.defined()) archive.write("torch_rng_ranks", state.rank_rng_states);
  std::ostringstream buffer;
  archive.save_to(buffer);
  std::string bytes = buffer.str();
  bytes += digest_trailer(bytes);
  return bytes;
}

void write_checkpoint_bytes(const std::string& path, const std::string& bytes) {
  try {
    write_file_atomically(path, bytes);
  } catch (const std::runtime_error& e) {
    throw CheckpointError(e.what());
  }
}

void write_checkpoint(const std::string& path, TransformerLM& model,
                      torch::optim::Optimizer* optimizer, const Config& config,
                      const Tokenizer& tokenizer, const TrainingState& state) {
  write_checkpoint_bytes(path, serialize_checkpoint(model, optimizer, config, tokenizer.kind(),
                                                    tokenizer.serialize(), state));
}

std::string Checkpoint::resolve(const std::string& p) {
  if (fs::is_directory(p)) {
    for (const char* name : {"best.pt", "last.pt"})
      if (fs::is_regular_file(fs::path(p) / name)) return (fs::path(p) / name).string();
    if (is_safetensors_export(p)) return p;
    if (fs::is_regular_file(fs::path(p) / "config.json"))
      throw CheckpointError(p +
                            ": a Hugging Face export, which transformers reads; qkv reads "
                            "its own safetensors export, a run directory or a checkpoint");
    throw CheckpointError(p +
                          ": neither a run directory (best.pt or last.pt) nor a safetensors "
                          "export (model.safetensors and config.yaml)");
  }
  if (!fs::is_regular_file(p)) throw CheckpointError(p + ": checkpoint not found");
  return p;
}

Checkpoint Checkpoint::load(const std::string& file_or_dir) {
  Checkpoint c;
  c.path = resolve(file_or_dir);
  if (fs::is_directory(c.path)) return load_safetensors_export(c.path);
  const std::string bytes = read_file_bytes(c.path);
  bool checked = false;
  const std::string_view archive = verified_archive(c.path, bytes, &checked);
  c.archive_ = std::make_shared<torch::serialize::InputArchive>();
  CheckpointMeta meta;
  try {
    // Onto the CPU whatever device wrote it: a GPU run's checkpoint loads where there is none.
    c.archive_->load_from(archive.data(), archive.size(), torch::Device(torch::kCPU));
    torch::Tensor t;
    c.archive_->read("meta", t);
    meta = CheckpointMeta::parse(tensor_bytes(t));
    c.archive_->read("config", t);
    c.config = Config::parse(tensor_bytes(t), c.path + " (stored config)");
    c.archive_->read("tokenizer", t);
    c.tokenizer = load_tokenizer(meta.tokenizer_kind, tensor_bytes(t));
    c.model = TransformerLM(c.config.model);
    torch::serialize::InputArchive model_archive;
    c.archive_->read("model", model_archive);
    c.model->load(model_archive);
    c.archive_->try_read("torch_rng", c.state.torch_rng_state);
    c.archive_->try_read("torch_rng_ranks", c.state.rank_rng_states);
  } catch (const c10::Error&) {
    // LibTorch's reason ("PytorchStreamReader failed reading zip archive: ...") says the same in
    // its own words.
    throw CheckpointError(c.path + ": not a readable checkpoint (truncated or corrupt)");
  } catch (const std::exception& e) {
    throw CheckpointError(c.path +
                          ": not a readable checkpoint (truncated or corrupt?): " + e.what());
  }
  check_finite(c.path, c.model);
  if (!checked)
    spdlog::warn("{} carries no checksum (written by an older qkv): its integrity is not checked",
                 c.path);
  c.state.step = meta.step;
  c.state.best_val_loss = meta.best_val_loss;
  c.state.best_step = meta.best_step;
  c.state.sampler_state = meta.sampler_state;
  c.state.world_size = meta.world_size;
  c.state.run_id = meta.run_id;
  c.qkv_version = meta.qkv_version;
  return c;
}

void Checkpoint::load_optimizer(torch::optim::Optimizer& optimizer) const {
  if (!archive_) throw CheckpointError(path + ": an exported model carries no optimizer state");
  try {
    torch::serialize::InputArchive optimizer_archive;
    archive_->read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": no usable optimizer state: " + e.what_without_backtrace());
  }
}

}  // namespace qkv
