// GPT-2's layout for a qkv model: the same pre-norm blocks with exact GELU, so every weight maps
// onto one of GPT2LMHeadModel's, transposed where GPT-2's Conv1D stores (in, out).
#include <cmath>

#include <nlohmann/json.hpp>

#include "qkv/export/model_export.h"
#include "qkv/tokenizer/byte_level_bpe_tokenizer.h"
#include "qkv/train/checkpoint.h"
#include "tensor_entries.h"

namespace qkv {

namespace {

using nlohmann::json;

torch::Tensor bias_or_zeros(const torch::Tensor& bias, int64_t size) {
  return bias.defined() ? bias : torch::zeros({size});
}

void add_layer_norm(TensorEntries& t, const std::string& name, const LayerNorm& ln) {
  t.add(name + ".weight", ln->weight);
  t.add(name + ".bias", bias_or_zeros(ln->bias, ln->weight.size(0)));
}

// GPT-2's Conv1D computes x W + b with W stored (in, out); LibTorch's Linear stores (out, in).
void add_conv1d(TensorEntries& t, const std::string& name, const Linear& linear) {
  t.add(name + ".weight", linear->weight.t());
  t.add(name + ".bias", bias_or_zeros(linear->bias, linear->weight.size(0)));
}

void add_block(TensorEntries& t, const std::string& prefix, TransformerBlockImpl& b) {
  add_layer_norm(t, prefix + ".ln_1", b.ln1);
  auto& a = *b.attn;
  // c_attn: W^Q, W^K, W^V side by side, (C, 3C); GPT-2 splits its output in that order and each
  // part into heads of C / H consecutive channels, as qkv does.
  t.add(prefix + ".attn.c_attn.weight",
        torch::cat({a.w_q->weight.t(), a.w_k->weight.t(), a.w_v->weight.t()}, 1));
  const int64_t C = a.w_q->weight.size(0);
  t.add(prefix + ".attn.c_attn.bias",
        torch::cat({bias_or_zeros(a.w_q->bias, C), bias_or_zeros(a.w_k->bias, C),
                    bias_or_zeros(a.w_v->bias, C)}));
  add_conv1d(t, prefix + ".attn.c_proj", a.w_o);
  add_layer_norm(t, prefix + ".ln_2", b.ln2);
  add_conv1d(t, prefix + ".mlp.c_fc", b.ffn->fc_in);
  add_conv1d(t, prefix + ".mlp.c_proj", b.ffn->fc_out);
}

json special_id(TokenId id) {
  return id >= 0 ? json(id) : json(nullptr);
}

json gpt2_config(const Checkpoint& ckpt) {
  const ModelConfig& c = ckpt.config.model;
  const SpecialIds special = ckpt.tokenizer->special_ids();
  return {{"architectures", {"GPT2LMHeadModel"}},
          {"model_type", "gpt2"},
          {"vocab_size", c.vocab_size},
          {"n_positions", c.block_size},
          {"n_embd", c.d_model},
          {"n_layer", c.n_layer},
          {"n_head", c.n_head},
          {"n_inner", c.ffn_dim()},
          // "gelu" is the exact erf GELU, "gelu_new" GPT-2's tanh form.
          {"activation_function", c.activation == "gelu_tanh" ? "gelu_new" : "gelu"},
          {"layer_norm_epsilon", ckpt.model->ln_f->eps},
          {"resid_pdrop", c.dropout},
          {"embd_pdrop", c.dropout},
          {"attn_pdrop", c.dropout},
          {"initializer_range", 0.02},
          {"scale_attn_weights", true},
          {"scale_attn_by_inverse_layer_idx", false},
          {"reorder_and_upcast_attn", false},
          // qkv scales its input embedding by sqrt(d_model) (unless scale_embeddings is off)
          // and GPT-2 does not: the scale is folded into wte, so a tied output matrix can be
          // wte itself only without it.
          {"tie_word_embeddings", c.tie_weights && !c.scale_embeddings},
          {"use_cache", true},
          {"bos_token_id", special_id(special.bos)},
          {"eos_token_id", special_id(special.eos)},
          {"pad_token_id", special_id(special.pad)},
          {"torch_dtype", "float32"},
          {"qkv_version", QKV_VERSION}};
}

// A BPE model without merges encodes text one character at a time, each to its id: exactly the
// char tokenizer. Fuse joins the pieces back without the spaces a plain decode would insert.
std::string char_tokenizer_json(const Tokenizer& tok) {
  json vocab = json::object();
  for (TokenId id = 0; id < tok.vocab_size(); ++id) vocab[tok.piece(id)] = id;
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", json::array()}};
  json out = {{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},
              {"decoder", {{"type", "Fuse"}}},
              {"model", model}};
  return out.dump(1);
}

void add_tokenizer_files(const Checkpoint& ckpt, std::map<std::string, std::string>& files) {
  const Tokenizer& tok = *ckpt.tokenizer;
  json config = {{"model_max_length", ckpt.config.model.block_size},
                 {"clean_up_tokenization_spaces", false}};
  if (const auto* bpe = dynamic_cast<const ByteLevelBpeTokenizer*>(&tok)) {  // GPT-2's own files
    files["vocab.json"] = bpe->vocab_json();
    files["merges.txt"] = bpe->merges_txt();
    config["tokenizer_class"] = "GPT2Tokenizer";
    const SpecialIds special = tok.special_ids();
    if (special.eos >= 0) config["bos_token"] = config["eos_token"] = tok.piece(special.eos);
    files["tokenizer_config.json"] = config.dump(1);
    return;
  }
  if (tok.kind() == "word")
    throw ExportError(
        "the word tokenizer has no Hugging Face tokenizer.json counterpart in qkv yet; export "
        "the model as safetensors instead");
  if (tok.kind() == "char") {
    for (TokenId id = 0; id < tok.vocab_size(); ++id)
      if (tok.encode(tok.piece(id)) != std::vector<TokenId>{id})
        throw ExportError("the char vocabulary's token " + std::to_string(id) +
                          " does not encode to itself; tokenizer.json cannot reproduce it");
    files["tokenizer.json"] = char_tokenizer_json(tok);
    config["tokenizer_class"] = "PreTrainedTokenizerFast";
  } else {
    // Gemma's tokenizer reads a SentencePiece model as qkv trains one (no dummy prefix, byte
    // fallback) and gave qkv's ids where Llama's and T5's prepend a space piece (transformers
    // 5.23). qkv adds no BOS or EOS; its own special pieces replace Gemma's <bos>/<eos>/<mask>,
    // which would otherwise be added past the vocabulary.
    files["tokenizer.model"] = tok.serialize();
    config["tokenizer_class"] = "GemmaTokenizer";
    config["add_bos_token"] = false;
    config["add_eos_token"] = false;
    const SpecialIds special = tok.special_ids();
    auto piece_or_null = [&](TokenId id) { return id >= 0 ? json(tok.piece(id)) : json(nullptr); };
    config["bos_token"] = piece_or_null(special.bos);
    config["eos_token"] = piece_or_null(special.eos);
    config["unk_token"] = piece_or_null(special.unk);
    config["pad_token"] = piece_or_null(special.pad);
    config["mask_token"] = nullptr;
  }
  files["tokenizer_config.json"] = config.dump(1);
}

}  // namespace

std::map<std::string, std::string> detail::hugging_face_files(const Checkpoint& ckpt,
                                                              std::vector<std::string>* notes) {
  TransformerLM model = ckpt.model;  // a holder that shares the module, for its non-const blocks
  auto& m = *model;
  torch::NoGradGuard no_grad;
  TensorEntries t;
  t.add("transformer.wte.weight", m.tok_emb->weight * m.tok_emb->scale);
  t.add("transformer.wpe.weight", m.pos_enc ? m.pos_enc->pe : m.pos_emb->weight);
  for (size_t i = 0; i < m.blocks->size(); ++i)
    add_block(t, "transformer.h." + std::to_string(i), *m.blocks[i]->as<TransformerBlockImpl>());
  add_layer_norm(t, "transformer.ln_f", m.ln_f);
  t.add("lm_head.weight", m.lm_head_weight());
  if (ckpt.config.model.tie_weights && ckpt.config.model.scale_embeddings)
    notes->push_back(
        "the tied embedding is written twice: wte scaled by sqrt(d_model) (GPT-2 has no input "
        "scale), lm_head as trained; tie_word_embeddings is false so the logits stay exact");
  std::map<std::string, std::string> files;
  files["model.safetensors"] = serialize_safetensors(t.entries(), {{"format", "pt"}});
  files["config.json"] = gpt2_config(ckpt).dump(1);
  add_tokenizer_files(ckpt, files);
  return files;
}

}  // namespace qkv
