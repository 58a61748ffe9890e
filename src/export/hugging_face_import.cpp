// GPT-2's layout read into qkv's model: the inverse of hugging_face_export.cpp.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "qkv/export/model_export.h"
#include "qkv/export/model_import.h"
#include "qkv/io/file_bytes.h"
#include "qkv/io/safetensors.h"
#include "qkv/tokenizer/byte_level_bpe_tokenizer.h"
#include "qkv/train/checkpoint.h"

namespace qkv {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// config.json's GPT-2 settings as qkv's ModelConfig, refusing what qkv's model cannot compute.
ModelConfig model_config_of(const json& c, const std::string& where) {
  auto bad = [&](const std::string& what) { return ExportError(where + ": " + what); };
  if (c.value("model_type", "") != "gpt2")
    throw bad("model_type is '" + c.value("model_type", "") +
              "'; qkv imports GPT-2 (GPT2LMHeadModel) only");
  auto integer = [&](const char* key) {
    if (!c.contains(key) || !c[key].is_number_integer() || c[key].get<int64_t>() <= 0)
      throw bad(std::string("expected a positive integer ") + key);
    return c[key].get<int64_t>();
  };
  ModelConfig m;
  m.vocab_size = integer("vocab_size");
  m.block_size = integer("n_positions");
  m.d_model = integer("n_embd");
  m.n_layer = integer("n_layer");
  m.n_head = integer("n_head");
  m.d_ff = c.contains("n_inner") && !c["n_inner"].is_null() ? integer("n_inner") : 0;
  const std::string activation = c.value("activation_function", "gelu_new");
  if (activation != "gelu_new" && activation != "gelu")
    throw bad("activation_function '" + activation + "': qkv has gelu and gelu_new");
  m.activation = activation == "gelu_new" ? "gelu_tanh" : "gelu";
  if (std::abs(c.value("layer_norm_epsilon", 1e-5) - 1e-5) > 1e-12)
    throw bad("layer_norm_epsilon must be 1e-05, qkv's layer norm's");
  if (!c.value("scale_attn_weights", true) || c.value("scale_attn_by_inverse_layer_idx", false))
    throw bad(
        "attention scaled otherwise than by 1/sqrt(d_k) (scale_attn_weights, "
        "scale_attn_by_inverse_layer_idx)");
  m.dropout = c.value("resid_pdrop", 0.1);
  m.bias = true;
  m.tie_weights = c.value("tie_word_embeddings", true);
  m.positional_encoding = PositionalEncodingKind::kLearned;
  m.scale_embeddings = false;
  try {
    m.validate();
  } catch (const std::invalid_argument& e) {
    throw bad(e.what());
  }
  return m;
}

// The file's tensors by GPT-2's names without the "transformer." prefix, as float32.
class Gpt2Tensors {
 public:
  Gpt2Tensors(const std::string& path) : path_(path), file_(SafetensorsFile::read(path)) {
    for (const auto& t : file_.tensors()) {
      std::string name = t.name.rfind("transformer.", 0) == 0 ? t.name.substr(12) : t.name;
      // The causal mask buffers of older checkpoints: qkv builds its own.
      if (name.size() > 10 && (name.substr(name.size() - 10) == ".attn.bias" ||
                               name.find(".attn.masked_bias") != std::string::npos))
        continue;
      by_name_[name] = &t;
    }
  }

  // The tensor `name` with `shape`, as float32; throws naming the file otherwise.
  torch::Tensor take(const std::string& name, std::vector<int64_t> shape) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) throw ExportError(path_ + ": no tensor '" + name + "'");
    const SafetensorsTensor& t = *it->second;
    if (t.shape != shape)
      throw ExportError(path_ + ": tensor '" + name + "' has shape " +
                        c10::str(c10::IntArrayRef(t.shape)) + ", config.json says " +
                        c10::str(c10::IntArrayRef(shape)));
    const auto dtype = t.dtype == "F32"   ? torch::kFloat32
                       : t.dtype == "F16" ? torch::kFloat16
                       : t.dtype == "BF16"
                           ? torch::kBFloat16
                           : throw ExportError(path_ + ": tensor '" + name + "' is " + t.dtype +
                                               ", expected F32, F16 or BF16");
    taken_.insert(name);
    return torch::from_blob(const_cast<char*>(t.bytes.data()), shape, dtype)
        .to(torch::kFloat32)
        .clone();
  }
  bool has(const std::string& name) const { return by_name_.count(name) > 0; }

  // Every tensor was used: one more means a model qkv's does not describe.
  void check_all_taken() const {
    for (const auto& [name, t] : by_name_)
      if (!taken_.count(name))
        throw ExportError(path_ + ": tensor '" + name + "' has no place in GPT-2's layout");
  }

 private:
  std::string path_;
  SafetensorsFile file_;
  std::map<std::string, const SafetensorsTensor*> by_name_;
  std::set<std::string> taken_;
};

void copy(torch::Tensor& to, const torch::Tensor& from) {
  to.copy_(from);
}

void load_block(Gpt2Tensors& t, const std::string& p, TransformerBlockImpl& b, int64_t C,
                int64_t F) {
  copy(b.ln1->weight, t.take(p + ".ln_1.weight", {C}));
  copy(b.ln1->bias, t.take(p + ".ln_1.bias", {C}));
  auto& a = *b.attn;
  // c_attn is x W + b with W (C, 3C): W^Q, W^K, W^V side by side, each (in, out).
  const auto w = t.take(p + ".attn.c_attn.weight", {C, 3 * C});
  const auto bias = t.take(p + ".attn.c_attn.bias", {3 * C});
  Linear* qkv[] = {&a.w_q, &a.w_k, &a.w_v};
  for (int64_t i = 0; i < 3; ++i) {
    copy((*qkv[i])->weight, w.slice(1, i * C, (i + 1) * C).t());
    copy((*qkv[i])->bias, bias.slice(0, i * C, (i + 1) * C));
  }
  copy(a.w_o->weight, t.take(p + ".attn.c_proj.weight", {C, C}).t());
  copy(a.w_o->bias, t.take(p + ".attn.c_proj.bias", {C}));
  copy(b.ln2->weight, t.take(p + ".ln_2.weight", {C}));
  copy(b.ln2->bias, t.take(p + ".ln_2.bias", {C}));
  copy(b.ffn->fc_in->weight, t.take(p + ".mlp.c_fc.weight", {C, F}).t());
  copy(b.ffn->fc_in->bias, t.take(p + ".mlp.c_fc.bias", {F}));
  copy(b.ffn->fc_out->weight, t.take(p + ".mlp.c_proj.weight", {F, C}).t());
  copy(b.ffn->fc_out->bias, t.take(p + ".mlp.c_proj.bias", {C}));
}

}  // namespace

Checkpoint import_hugging_face_gpt2(const std::string& dir) {
  const fs::path d(dir);
  if (!fs::is_directory(d)) throw ExportError(dir + ": not a directory");
  const std::string config_path = (d / "config.json").string();
  if (!fs::is_regular_file(config_path))
    throw ExportError(dir + ": no config.json (expected a Hugging Face GPT-2 directory)");
  json hf;
  try {
    hf = json::parse(read_file_bytes(config_path));
  } catch (const json::exception& e) {
    throw ExportError(config_path + ": not JSON: " + e.what());
  }
  Checkpoint ckpt;
  ckpt.path = dir;
  ckpt.config.model = model_config_of(hf, config_path);
  const auto& m = ckpt.config.model;

  const std::string weights = (d / "model.safetensors").string();
  if (!fs::is_regular_file(weights))
    throw ExportError(
        dir + ": no model.safetensors" +
        (fs::exists(d / "pytorch_model.bin")
             ? " (pytorch_model.bin is a pickle qkv does not read: save the model again with "
               "save_pretrained, which writes safetensors)"
             : ""));
  try {
    ckpt.tokenizer =
        std::make_unique<ByteLevelBpeTokenizer>(ByteLevelBpeTokenizer::from_directory(dir));
  } catch (const std::invalid_argument& e) {
    throw ExportError(e.what());
  }
  if (ckpt.tokenizer->vocab_size() != m.vocab_size)
    throw ExportError(dir + ": the tokenizer has " + std::to_string(ckpt.tokenizer->vocab_size()) +
                      " tokens, config.json's vocab_size is " + std::to_string(m.vocab_size));

  Gpt2Tensors t(weights);
  ckpt.model = TransformerLM(m);
  auto& lm = *ckpt.model;
  const int64_t C = m.d_model, F = m.ffn_dim(), V = m.vocab_size;
  torch::NoGradGuard no_grad;
  copy(lm.tok_emb->weight, t.take("wte.weight", {V, C}));
  copy(lm.pos_emb->weight, t.take("wpe.weight", {m.block_size, C}));
  for (int64_t i = 0; i < m.n_layer; ++i)
    load_block(t, "h." + std::to_string(i), *lm.blocks[i]->as<TransformerBlockImpl>(), C, F);
  copy(lm.ln_f->weight, t.take("ln_f.weight", {C}));
  copy(lm.ln_f->bias, t.take("ln_f.bias", {C}));
  if (!m.tie_weights) {
    copy(lm.lm_head, t.take("lm_head.weight", {V, C}));
  } else if (t.has("lm_head.weight") &&
             !torch::equal(t.take("lm_head.weight", {V, C}), lm.tok_emb->weight)) {
    throw ExportError(weights + ": tie_word_embeddings is true but lm_head.weight is not wte");
  }
  t.check_all_taken();
  for (const auto& p : lm.parameters())
    if (!torch::isfinite(p).all().item<bool>())
      throw ExportError(weights + ": holds NaN or infinite values");
  ckpt.model->eval();
  ckpt.config.tokenizer.kind = "bpe";
  // The model's and tokenizer's sections; data and training are the fine-tuning run's to say.
  ckpt.config.tokenizer.model_file = fs::absolute(d).lexically_normal().string();
  return ckpt;
}

void write_imported_run(const Checkpoint& ckpt, const std::string& run_dir) {
  std::error_code ec;
  if (fs::exists(run_dir, ec) && !(fs::is_directory(run_dir, ec) && fs::is_empty(run_dir, ec)))
    throw ExportError(run_dir + " exists and is not empty; give a new directory");
  fs::create_directories(run_dir, ec);
  if (ec) throw ExportError(run_dir + ": cannot create it: " + ec.message());
  Config config = ckpt.config;
  config.train.out_dir = run_dir;
  TransformerLM model = ckpt.model;
  write_checkpoint(run_dir + "/best.pt", model, nullptr, config, *ckpt.tokenizer, ckpt.state);
  write_file_atomically(run_dir + "/config.yaml", config.to_yaml());
}

}  // namespace qkv
