#include "qkv/train/safetensors_checkpoint.h"

#include <cstring>
#include <filesystem>

#include "qkv/io/file_bytes.h"
#include "qkv/io/safetensors.h"

namespace qkv {

namespace fs = std::filesystem;

namespace {

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

}  // namespace

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
