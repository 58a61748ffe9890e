#include "qkv/export/model_export.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <regex>

#include <spdlog/spdlog.h>

#include "qkv/io/file_bytes.h"
#include "qkv/train/checkpoint.h"
#include "qkv/train/safetensors_checkpoint.h"
#include "tensor_entries.h"

namespace qkv {

namespace fs = std::filesystem;

namespace {

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
  if (fs::exists(parent, ec) && !fs::is_directory(parent, ec))
    throw ExportError(out_dir + ": " + parent.string() + " is a file, not a directory");
  if (fs::create_directories(parent, ec); ec)
    throw ExportError(out_dir + ": cannot create " + parent.string() + ": " + ec.message());
  remove_dead_writers_staging(parent);
  const fs::path staging =
      parent / ("." + out.filename().string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(staging, ec);
  try {
    for (const auto& [name, bytes] : files) write_file_atomically((staging / name).string(), bytes);
    // rename(2) replaces an empty directory, so an empty out_dir is taken over too.
    fs::rename(staging, out);
  } catch (const fs::filesystem_error& e) {  // in qkv's words, not the library's
    fs::remove_all(staging, ec);
    throw ExportError(out_dir + ": cannot write the export: " + e.path1().string() + ": " +
                      e.code().message());
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

}  // namespace qkv
