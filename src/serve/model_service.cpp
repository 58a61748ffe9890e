#include "qkv/serve/model_service.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include <torch/torch.h>

#include "qkv/generate/text_generator.h"
#include "qkv/inspect/attention_probe.h"
#include "qkv/inspect/contextual_embeddings.h"
#include "qkv/inspect/sense_probe.h"
#include "qkv/inspect/token_label.h"
#include "qkv/serve/request_error.h"

namespace qkv {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Checkpoints kept in memory at once: the default and the few a user compares.
constexpr size_t kMaxLoaded = 6;

std::vector<std::string> labels_of(const Tokenizer& tokenizer, const std::vector<TokenId>& ids) {
  std::vector<std::string> out;
  for (TokenId id : ids) out.push_back(token_label(tokenizer.piece(id)));
  return out;
}

std::vector<double> to_vector(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kFloat64).contiguous().view(-1);
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

// The run directory's checkpoints in the order of their steps: step_N.pt, then last.pt (the
// newest), then best.pt (the one generate and eval use).
std::vector<std::string> scan_run(const std::string& dir) {
  std::vector<std::string> steps;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (e.is_regular_file() && name.rfind("step_", 0) == 0 && e.path().extension() == ".pt")
      steps.push_back(name);
  }
  std::sort(steps.begin(), steps.end());
  for (const char* name : {"last.pt", "best.pt"})
    if (fs::is_regular_file(fs::path(dir) / name)) steps.push_back(name);
  return steps;
}

}  // namespace

ModelService::ModelService(const std::string& source) {
  const std::string resolved = Checkpoint::resolve(source);  // throws naming `source`
  std::error_code ec;
  // A run directory however spelled ("runs/x", "runs/x/"): the file resolve() chose sits in it.
  if (fs::is_directory(source) && fs::is_regular_file(resolved) &&
      fs::equivalent(fs::path(resolved).parent_path(), source, ec)) {
    run_dir_ = source;
    names_ = scan_run(run_dir_);
    default_name_ = fs::path(resolved).filename().string();
  } else {
    single_file_ = resolved;
    default_name_ = fs::path(resolved).filename().string();
    names_ = {default_name_};
  }
  auto id = fs::weakly_canonical(fs::absolute(run_dir_.empty() ? resolved : run_dir_));
  model_id_ = id.filename().string();
  if (model_id_.empty()) model_id_ = id.parent_path().filename().string();
  // A checkpoint that does not load fails here, before the port opens.
  compute_.run([&] { checkpoint(""); });
}

Checkpoint& ModelService::checkpoint(const std::string& requested) {
  const std::string name = requested.empty() ? default_name_ : requested;
  if (auto it = loaded_.find(name); it != loaded_.end()) return it->second;
  if (!run_dir_.empty()) names_ = scan_run(run_dir_);  // a running training adds step_N.pt
  if (std::find(names_.begin(), names_.end(), name) == names_.end()) {
    std::string known;
    for (const auto& n : names_) known += (known.empty() ? "" : ", ") + n;
    throw RequestError(404, "checkpoint " + name + " is not one of this model's (" + known + ")");
  }
  while (loaded_.size() >= kMaxLoaded) {
    auto victim = loaded_.begin();
    if (victim->first == default_name_) ++victim;
    loaded_.erase(victim);
  }
  auto ckpt = Checkpoint::load(run_dir_.empty() ? single_file_ : run_dir_ + "/" + name);
  ckpt.model->eval();
  return loaded_.emplace(name, std::move(ckpt)).first->second;
}

std::vector<TokenId> ModelService::encode(const Checkpoint& ckpt, const std::string& text,
                                          const std::string& what) const {
  std::vector<TokenId> ids;
  try {
    ids = ckpt.tokenizer->encode_from(text, what);
  } catch (const std::invalid_argument& e) {
    throw RequestError(400, e.what());
  }
  const int64_t block = ckpt.config.model.block_size;
  if (static_cast<int64_t>(ids.size()) > block)
    throw RequestError(400, what + " has " + std::to_string(ids.size()) +
                                " tokens, more than the model's context of " +
                                std::to_string(block));
  return ids;
}

json ModelService::info() {
  json out;
  compute_.run([&] {
    auto& ckpt = checkpoint("");
    if (!run_dir_.empty()) names_ = scan_run(run_dir_);
    json list = json::array();
    for (const auto& n : names_) list.push_back(n);
    const auto& m = ckpt.config.model;
    // A text this tokenizer surely encodes, for a page whose default text it cannot: the model's
    // own greedy continuation of its start token.
    GenerationOptions greedy;
    greedy.max_new_tokens = std::min<int64_t>(24, m.block_size - 1);
    greedy.sampling.temperature = 0;
    auto example = TextGenerator(ckpt.model, *ckpt.tokenizer).generate({}, greedy).text;
    if (const auto line_end = example.find('\n'); line_end != std::string::npos && line_end > 0)
      example.resize(line_end);  // one line reads better as a sample text
    while (!example.empty() && std::isspace(static_cast<unsigned char>(example.back())))
      example.pop_back();
    out = {{"model", model_id_},
           {"example", example},
           {"checkpoints", list},
           {"default", default_name_},
           {"step", ckpt.state.step},
           {"tokenizer", ckpt.tokenizer->kind()},
           {"config",
            {{"vocab_size", m.vocab_size},
             {"block_size", m.block_size},
             {"n_layer", m.n_layer},
             {"n_head", m.n_head},
             {"d_model", m.d_model}}}};
  });
  return out;
}

json ModelService::attention(const std::string& text, const std::string& name) {
  json j;
  compute_.run([&] {
    auto& ckpt = checkpoint(name);
    const auto ids = encode(ckpt, text, "text");
    if (ids.empty()) throw RequestError(400, "text must not be empty");
    const auto map = probe_attention(ckpt.model, *ckpt.tokenizer, ids, text);
    j = json::parse(map.to_json());
    j["labels"] = labels_of(*ckpt.tokenizer, ids);
    j["checkpoint"] = name.empty() ? default_name_ : name;
    j["step"] = ckpt.state.step;
  });
  return j;
}

json ModelService::explain(const std::string& text, const std::string& name, int64_t layer,
                           int64_t head, int64_t query) {
  json j;
  compute_.run([&] {
    auto& ckpt = checkpoint(name);
    const auto& m = ckpt.config.model;
    const auto ids = encode(ckpt, text, "text");
    const int64_t T = static_cast<int64_t>(ids.size());
    if (T == 0) throw RequestError(400, "text must not be empty");
    auto in_range = [](const char* what, int64_t v, int64_t n) {
      if (v < 0 || v >= n)
        throw RequestError(400, std::string(what) + " must be in [0, " + std::to_string(n) +
                                    "), got " + std::to_string(v));
    };
    in_range("layer", layer, m.n_layer);
    in_range("head", head, m.n_head);
    in_range("query", query, T);

    const auto seen = run_for_inspection(ckpt.model, ids);
    // The block's input, its first layer norm, then this head's slice of W^Q, W^K, W^V: the same
    // modules the forward pass ran, so q, k and v are the model's own.
    const auto& x = layer == 0 ? seen.input_embeddings : seen.hidden_states[layer - 1];  // (1,T,C)
    auto* block = ckpt.model->blocks[layer]->as<TransformerBlock>();
    auto& attn = *block->attn;
    const auto a = block->ln1(x);
    const int64_t D = m.d_model / m.n_head;
    auto head_of = [&](Linear& w) {  // (T, D) in float64
      return w(a).view({T, m.n_head, D}).select(1, head).to(torch::kCPU, torch::kFloat64);
    };
    const auto q = head_of(attn.w_q)[query];                  // (D)
    const auto k = head_of(attn.w_k).slice(0, 0, query + 1);  // (query+1, D): causal
    const auto v = head_of(attn.w_v).slice(0, 0, query + 1);
    const double scale = attn.options.scale_scores() ? 1.0 / std::sqrt(double(D)) : 1.0;
    const auto dots = k.matmul(q);  // q . k_j
    const auto scaled = dots * scale;
    const auto weights = torch::softmax(scaled, 0);
    const auto output = weights.matmul(v);  // sum_j w_j v_j
    const auto model_row = seen.attention_weights[layer][0][head][query].slice(0, 0, query + 1);

    const auto labels = labels_of(*ckpt.tokenizer, ids);
    const auto kv = to_vector(k), vv = to_vector(v), dv = to_vector(dots), sv = to_vector(scaled),
               wv = to_vector(weights), mv = to_vector(model_row);
    json keys = json::array();
    for (int64_t p = 0; p <= query; ++p) {
      const auto at = static_cast<size_t>(p);
      keys.push_back({{"position", p},
                      {"label", labels[at]},
                      {"k", std::vector<double>(kv.begin() + p * D, kv.begin() + (p + 1) * D)},
                      {"v", std::vector<double>(vv.begin() + p * D, vv.begin() + (p + 1) * D)},
                      {"dot", dv[at]},
                      {"scaled", sv[at]},
                      {"weight", wv[at]},
                      {"model_weight", mv[at]}});
    }
    j = {{"layer", layer},
         {"head", head},
         {"query", query},
         {"d_k", D},
         {"scale", scale},
         {"query_label", labels[size_t(query)]},
         {"q", to_vector(q)},
         {"keys", std::move(keys)},
         {"output", to_vector(output)}};
  });
  return j;
}

json ModelService::next_tokens(const std::string& text, const std::string& name, double temperature,
                               int64_t top) {
  if (!(temperature >= 0.0 && temperature <= 2.0))
    throw RequestError(400, "temperature must be between 0 and 2");
  if (top < 1 || top > 100) throw RequestError(400, "top must be between 1 and 100");
  json j;
  compute_.run([&] {
    auto& ckpt = checkpoint(name);
    auto ids = encode(ckpt, text, "text");
    if (ids.empty()) ids.push_back(ckpt.tokenizer->start_id());
    const auto device = ckpt.model->parameters().front().device();
    auto idx = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0).to(device);
    auto logits = ckpt.model->forward(idx)[0][-1].to(torch::kCPU, torch::kFloat64);  // (V)
    // Temperature 0 is greedy decoding: all the probability on the most likely token.
    auto probs = temperature > 0
                     ? torch::softmax(logits / temperature, 0)
                     : torch::one_hot(logits.argmax(), logits.size(0)).to(torch::kFloat64);
    auto [p, id] = probs.topk(std::min<int64_t>(top, probs.size(0)));
    json list = json::array();
    for (int64_t i = 0; i < p.size(0); ++i) {
      const auto token = static_cast<TokenId>(id[i].item<int64_t>());
      list.push_back({{"id", token},
                      {"label", token_label(ckpt.tokenizer->piece(token))},
                      {"text", ckpt.tokenizer->decode({token})},
                      {"probability", p[i].item<double>()}});
    }
    j = {{"temperature", temperature},
         {"tokens", static_cast<int64_t>(ids.size())},
         {"top", std::move(list)}};
  });
  return j;
}

namespace {

// The sense probe's figures per level, and each sentence's point in the level's 2-D picture.
json separation_json(const SenseProbe& probe) {
  json levels = json::array();
  for (size_t l = 0; l < probe.levels.size(); ++l) {
    const auto& s = probe.separation[l];
    json points = json::array();
    if (s.pca.defined()) {
      const auto pca = to_vector(s.pca);
      for (size_t i = 0; i < probe.sense_of.size(); ++i)
        points.push_back({pca[2 * i], pca[2 * i + 1]});
    }
    levels.push_back(
        {{"level", probe.levels[l]},
         {"distance_ratio", std::isfinite(s.distance_ratio) ? json(s.distance_ratio) : json()},
         {"nearest_centroid_accuracy", s.nearest_centroid_accuracy},
         {"cosine_within", s.cosine_within},
         {"cosine_between", s.cosine_between},
         {"raw_cosine_within", s.raw_cosine_within},
         {"raw_cosine_between", s.raw_cosine_between},
         {"pca", std::move(points)}});
  }
  return {{"senses", probe.senses},
          {"sense_of", probe.sense_of},
          {"same_position", probe.same_position},
          {"levels", std::move(levels)}};
}

}  // namespace

json ModelService::embed(const std::vector<std::string>& senses,
                         const std::vector<std::string>& sentences, const std::string& word,
                         const std::string& name) {
  if (sentences.size() < 2 || sentences.size() > 64)
    throw RequestError(400, "sentences: give 2 to 64, got " + std::to_string(sentences.size()));
  if (!senses.empty() && senses.size() != sentences.size())
    throw RequestError(400, "senses: one per sentence or none");
  json j;
  compute_.run([&] {
    auto& ckpt = checkpoint(name);
    for (size_t s = 0; s < sentences.size(); ++s)
      encode(ckpt, sentences[s], "sentence " + std::to_string(s + 1));  // length and vocabulary
    try {
      if (sentences.size() <= 8) {
        const auto cmp =
            compare_contextual_embeddings(ckpt.model, *ckpt.tokenizer, sentences, word);
        json pairs = json::array();
        for (size_t p = 0; p < cmp.pairs.size(); ++p)
          pairs.push_back({{"sentences", {cmp.pairs[p].first + 1, cmp.pairs[p].second + 1}},
                           {"cosine", cmp.cosine[p]},
                           {"update_cosine", cmp.update_cosine[p]}});  // NaN dumps as null
        json positions = json::array();
        for (const auto& o : cmp.occurrences) positions.push_back(o.position);
        j["levels"] = cmp.levels;
        j["pairs"] = std::move(pairs);
        j["positions"] = std::move(positions);
      }
      if (!senses.empty()) {
        std::vector<SenseSentence> labelled;
        for (size_t s = 0; s < sentences.size(); ++s) labelled.push_back({senses[s], sentences[s]});
        j["separation"] =
            separation_json(probe_senses(ckpt.model, *ckpt.tokenizer, labelled, word));
      }
    } catch (const std::invalid_argument& e) {  // the word missing from a sentence, one sense...
      throw RequestError(400, e.what());
    }
    j["word"] = word;
  });
  return j;
}

CompletionOutcome ModelService::complete(const CompletionRequest& request,
                                         const std::function<void(const std::string&)>& on_text) {
  CompletionOutcome out;
  compute_.run([&] {
    auto& ckpt = checkpoint(checkpoint_of_model(request.model));
    const auto ids = encode(ckpt, request.prompt, "prompt");
    TextGenerator generator(ckpt.model, *ckpt.tokenizer);
    const auto result = generator.generate(ids, request.generation_options(), on_text);
    out.text = result.text;
    out.finish_reason = result.stopped ? "stop" : "length";
    out.usage = {static_cast<int64_t>(ids.size()), static_cast<int64_t>(result.tokens.size())};
  });
  return out;
}

void ModelService::check(const CompletionRequest& request) {
  compute_.run(
      [&] { encode(checkpoint(checkpoint_of_model(request.model)), request.prompt, "prompt"); });
}

std::vector<std::string> ModelService::model_ids() {
  std::vector<std::string> out{model_id_};
  compute_.run([&] {
    if (!run_dir_.empty()) names_ = scan_run(run_dir_);
    for (const auto& n : names_) out.push_back(model_id_ + ":" + n);
  });
  return out;
}

std::string ModelService::checkpoint_of_model(const std::string& model) const {
  if (model.empty() || model == model_id_) return "";
  const std::string prefix = model_id_ + ":";
  if (model.rfind(prefix, 0) == 0) return model.substr(prefix.size());
  throw RequestError(404, "model " + model + " is not served here; /v1/models lists " + model_id_ +
                              " and " + prefix + "CHECKPOINT");
}

}  // namespace qkv
