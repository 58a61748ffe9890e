#include "qkv/export/model_export.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <regex>

#include <spdlog/spdlog.h>

#include "qkv/data/file_bytes.h"
#include "qkv/train/checkpoint.h"
#include "tensor_entries.h"

namespace qkv {

namespace fs = std::filesystem;

namespace {

constexpr const char* kWeightsFile = "model.safetensors";
constexpr const char* kConfigFile = "config.yaml";
constexpr const char* kTokenizerFile = "tokenizer.qkv";

std::map<std::string, std::string> safetensors_files(const Checkpoint& ckpt) {
  TensorEntries tensors;
  for (const auto& p : ckpt.model->named_parameters()) tensors.add(p.key(), p.value());
  // "format: pt" is what transformers and safetensors' own loaders expect of a PyTorch file.
  const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                       {"qkv_version", QKV_VERSION},
                                                       {"step", std::to_string(ckpt.state.step)},
                                                       {"tokenizer", ckpt.tokenizer->kind()}};
  return {{kWeightsFile, serialize_safetensors(tensors.entries(), metadata)},
          {kConfigFile, ckpt.config.to_yaml()},
          {kTokenizerFile, tokenizer_file_bytes(*ckpt.tokenizer)}};
}

// The parameter `name` of the model, filled from the file's tensor of the same name.
void load_parameter(const SafetensorsFile& file, const std::string& origin, const std::string& name,
                    torch::Tensor& param) {
  const SafetensorsTensor* t = file.find(name);
  if (!t)
    throw CheckpointError(origin + ": no tensor '" + name + "' (the config's model needs it)");
  if (t->dtype != "F32")
    throw CheckpointError(origin + ": tensor '" + name + "' is " + t->dtype + ", expected F32");
  if (t->shape != param.sizes().vec())
    throw CheckpointError(origin + ": tensor '" + name + "' has shape " +
                          c10::str(c10::IntArrayRef(t->shape)) + ", the config's model needs " +
                          c10::str(param.sizes()));
  std::memcpy(param.data_ptr<float>(), t->bytes.data(), t->bytes.size());
  if (!torch::isfinite(param).all().item<bool>())
    throw CheckpointError(origin + ": tensor '" + name + "' holds NaN or infinite values");
}

// The staging directories (".NAME.partial-PID") of exports whose process is gone, killed before
// its rename: nothing else would ever remove them.
void remove_dead_writers_staging(const fs::path& parent) {
  static const std::regex staging(R"(\..+\.partial-(\d{1,9}))");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (!entry.is_directory(ec) || !std::regex_match(name, m, staging)) continue;
    const auto pid = static_cast<pid_t>(std::stol(m[1].str()));
    if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) fs::remove_all(entry, ec);
  }
}

}  // namespace

ExportFormat export_format_from_string(const std::string& name) {
  if (name == "safetensors") return ExportFormat::kSafetensors;
  if (name == "hf") return ExportFormat::kHuggingFace;
  throw std::invalid_argument("export format '" + name + "': expected safetensors or hf");
}

ExportResult export_model(const Checkpoint& ckpt, ExportFormat format, const std::string& out_dir) {
  ExportResult result;
  result.dir = out_dir;
  const auto files = format == ExportFormat::kSafetensors
                         ? safetensors_files(ckpt)
                         : detail::hugging_face_files(ckpt, &result.notes);
  detail::write_export_directory(out_dir, files);
  for (const auto& f : files) result.files.push_back(f.first);
  return result;
}

void detail::write_export_directory(const std::string& out_dir,
                                    const std::map<std::string, std::string>& files) {
  check_export_target(out_dir);
  const fs::path out = fs::path(out_dir).lexically_normal();
  std::error_code ec;
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  remove_dead_writers_staging(parent);
  const fs::path staging =
      parent / ("." + out.filename().string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(staging, ec);
  try {
    for (const auto& [name, bytes] : files) write_file_atomically((staging / name).string(), bytes);
    // rename(2) replaces an empty directory, so an empty out_dir is taken over too.
    fs::rename(staging, out);
  } catch (const std::exception& e) {
    fs::remove_all(staging, ec);
    throw ExportError(out_dir + ": cannot write the export: " + e.what());
  }
}

void check_export_target(const std::string& out_dir) {
  std::error_code ec;
  const fs::path out = fs::path(out_dir).lexically_normal();
  if (out_dir.empty()) throw ExportError("the export directory is empty: name one");
  if (fs::exists(out, ec) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec)))
    throw ExportError(out_dir + ": exists and is not an empty directory; name a new one");
}

bool is_safetensors_export(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(dir) / kWeightsFile, ec) &&
         fs::is_regular_file(fs::path(dir) / kConfigFile, ec);
}

Checkpoint load_safetensors_export(const std::string& dir) {
  const std::string weights = (fs::path(dir) / kWeightsFile).string();
  Checkpoint c;
  c.path = dir;
  try {
    const std::string config_path = (fs::path(dir) / kConfigFile).string();
    c.config = Config::parse(read_file_bytes(config_path), config_path);
    c.tokenizer = load_tokenizer_file((fs::path(dir) / kTokenizerFile).string());
    const auto file = SafetensorsFile::read(weights);
    c.model = TransformerLM(c.config.model);
    torch::NoGradGuard no_grad;
    size_t used = 0;
    for (auto& p : c.model->named_parameters()) {
      load_parameter(file, weights, p.key(), p.value());
      ++used;
    }
    if (used != file.tensors().size())
      throw CheckpointError(weights + ": holds " + std::to_string(file.tensors().size()) +
                            " tensors, the config's model has " + std::to_string(used) +
                            " parameters");
    const auto& meta = file.metadata();
    if (meta.count("tokenizer") && meta.at("tokenizer") != c.tokenizer->kind())
      throw CheckpointError(weights + ": written with a " + meta.at("tokenizer") +
                            " tokenizer, but tokenizer.qkv holds a " + c.tokenizer->kind() +
                            " one");
    if (meta.count("step")) c.state.step = std::stoll(meta.at("step"));
    c.qkv_version = meta.count("qkv_version") ? meta.at("qkv_version") : "";
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(dir + ": not a readable qkv export: " + e.what());
  }
  return c;
}

}  // namespace qkv
