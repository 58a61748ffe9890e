#include "qkv/train/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include <torch/serialize/output-archive.h>

#include "qkv/data/file_bytes.h"

namespace qkv {

namespace fs = std::filesystem;
using nlohmann::json;

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

}  // namespace

void write_checkpoint(const std::string& path, TransformerLM& model,
                      torch::optim::Optimizer* optimizer, const Config& config,
                      const Tokenizer& tokenizer, const TrainingState& state) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  model->save(model_archive);
  archive.write("model", model_archive);
  if (optimizer) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  json meta = {
      {"format", "qkv-checkpoint"},
      {"qkv_version", QKV_VERSION},
      {"step", state.step},
      {"best_val_loss", std::isfinite(state.best_val_loss) ? json(state.best_val_loss) : json()},
      {"best_step", state.best_step},
      {"sampler_state", state.sampler_state},
      {"tokenizer_kind", tokenizer.kind()}};
  archive.write("meta", bytes_tensor(meta.dump()));
  archive.write("config", bytes_tensor(config.to_yaml()));
  archive.write("tokenizer", bytes_tensor(tokenizer.serialize()));
  if (state.torch_rng_state.defined()) archive.write("torch_rng", state.torch_rng_state);
  std::ostringstream buffer;
  archive.save_to(buffer);
  try {
    write_file_atomically(path, buffer.str());
  } catch (const std::runtime_error& e) {
    throw CheckpointError(e.what());
  }
}

std::string Checkpoint::resolve(const std::string& p) {
  if (fs::is_directory(p)) {
    for (const char* name : {"best.pt", "last.pt"})
      if (fs::is_regular_file(fs::path(p) / name)) return (fs::path(p) / name).string();
    throw CheckpointError(p + ": run directory has no best.pt or last.pt");
  }
  if (!fs::is_regular_file(p)) throw CheckpointError(p + ": checkpoint not found");
  return p;
}

Checkpoint Checkpoint::load(const std::string& file_or_dir) {
  Checkpoint c;
  c.path = resolve(file_or_dir);
  const std::string bytes = read_file_bytes(c.path);
  c.archive_ = std::make_shared<torch::serialize::InputArchive>();
  json meta;
  try {
    c.archive_->load_from(bytes.data(), bytes.size());
    torch::Tensor t;
    c.archive_->read("meta", t);
    meta = json::parse(tensor_bytes(t));
    if (meta.value("format", "") != "qkv-checkpoint")
      throw std::runtime_error("not a qkv checkpoint");
    c.archive_->read("config", t);
    c.config = Config::parse(tensor_bytes(t), c.path + " (stored config)");
    c.archive_->read("tokenizer", t);
    c.tokenizer = load_tokenizer(meta.at("tokenizer_kind").get<std::string>(), tensor_bytes(t));
    c.model = TransformerLM(c.config.model);
    torch::serialize::InputArchive model_archive;
    c.archive_->read("model", model_archive);
    c.model->load(model_archive);
    c.archive_->try_read("torch_rng", c.state.torch_rng_state);
  } catch (const c10::Error& e) {
    throw CheckpointError(c.path + ": not a readable checkpoint (truncated or corrupt?): " +
                          e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw CheckpointError(c.path +
                          ": not a readable checkpoint (truncated or corrupt?): " + e.what());
  }
  c.state.step = meta.value("step", int64_t{0});
  c.state.best_val_loss =
      meta["best_val_loss"].is_number() ? meta["best_val_loss"].get<double>() : INFINITY;
  c.state.best_step = meta.value("best_step", int64_t{-1});
  c.state.sampler_state = meta.value("sampler_state", "");
  c.qkv_version = meta.value("qkv_version", "");
  return c;
}

void Checkpoint::load_optimizer(torch::optim::Optimizer& optimizer) const {
  try {
    torch::serialize::InputArchive optimizer_archive;
    archive_->read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": no usable optimizer state: " + e.what_without_backtrace());
  }
}

}  // namespace qkv
