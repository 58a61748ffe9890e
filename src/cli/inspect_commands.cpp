// `qkv attention`, `qkv embed` and `qkv report`: seeing what self-attention does.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "qkv/inspect/attention_probe.h"
#include "qkv/inspect/attention_table.h"
#include "qkv/inspect/contextual_embeddings.h"
#include "qkv/inspect/sense_probe.h"
#include "qkv/inspect/token_label.h"
#include "qkv/io/file_bytes.h"
#include "qkv/plot/attention_heatmap.h"
#include "qkv/report/sense_plots.h"
#include "qkv/report/training_report.h"
#include "qkv/train/checkpoint.h"

namespace qkv::cli {

namespace {

std::string label_list(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += (out.empty() ? "" : " ") + token_label(p);
  return out;
}

// A bar of up to `width` cells for a value in [0, 1]: similarities read faster as lengths.
std::string bar(double v, int width = 20) {
  const int n = static_cast<int>(std::lround(std::clamp(v, 0.0, 1.0) * width));
  std::string out;
  for (int i = 0; i < n; ++i) out += "\u2588";
  return out;
}

nlohmann::json nan_to_null(const std::vector<double>& v) {
  nlohmann::json out = nlohmann::json::array();
  for (double x : v) out.push_back(std::isnan(x) ? nlohmann::json() : nlohmann::json(x));
  return out;
}

void print_embed_json(const ContextualEmbeddingComparison& cmp) {
  nlohmann::json j;
  j["word"] = cmp.word;
  j["levels"] = cmp.levels;
  for (const auto& o : cmp.occurrences)
    j["occurrences"].push_back({{"sentence", o.sentence + 1},
                                {"text", o.text},
                                {"position", o.position},
                                {"piece", o.piece},
                                {"pieces", o.pieces}});
  for (size_t p = 0; p < cmp.pairs.size(); ++p)
    j["pairs"].push_back({{"sentences", {cmp.pairs[p].first + 1, cmp.pairs[p].second + 1}},
                          {"cosine", cmp.cosine[p]},
                          {"update_cosine", nan_to_null(cmp.update_cosine[p])}});
  for (size_t o = 0; o < cmp.top_attended.size(); ++o) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& tops : cmp.top_attended[o]) {
      nlohmann::json row = nlohmann::json::array();
      for (const auto& t : tops)
        row.push_back({{"position", t.position}, {"piece", t.piece}, {"weight", t.weight}});
      layers.push_back(std::move(row));
    }
    j["occurrences"][o]["top_attended"] = std::move(layers);
  }
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

void print_embed_table(const ContextualEmbeddingComparison& cmp) {
  for (const auto& o : cmp.occurrences)
    std::printf("sentence %zu: %s   (\"%s\" = token %lld, %s)\n", o.sentence + 1, o.text.c_str(),
                cmp.word.c_str(), (long long)o.position, token_label(o.piece).c_str());
  for (size_t p = 0; p < cmp.pairs.size(); ++p) {
    const auto& a = cmp.occurrences[cmp.pairs[p].first];
    const auto& b = cmp.occurrences[cmp.pairs[p].second];
    std::printf(
        "\ncosine similarity of \"%s\", sentence %zu (token %lld) vs %zu (token %lld); raw "
        "vectors, not centred: a single pair cannot remove what all sentences share\n",
        cmp.word.c_str(), cmp.pairs[p].first + 1, (long long)a.position, cmp.pairs[p].second + 1,
        (long long)b.position);
    std::printf("  %-12s %7s  %-20s  %s\n", "level", "vector", "", "added by the blocks");
    for (size_t l = 0; l < cmp.levels.size(); ++l) {
      const double u = cmp.update_cosine[p][l];
      std::printf("  %-12s %7.3f  %-*s", cmp.levels[l].c_str(), cmp.cosine[p][l],
                  20 + 2 * static_cast<int>(bar(cmp.cosine[p][l]).size() / 3),
                  bar(cmp.cosine[p][l]).c_str());
      if (std::isnan(u))
        std::printf("  %7s\n", "-");
      else
        std::printf("  %7.3f\n", u);
    }
  }
  std::printf("\nwhat \"%s\" attends to most (heads averaged; token(position) weight)\n",
              cmp.word.c_str());
  for (size_t o = 0; o < cmp.occurrences.size(); ++o) {
    std::printf("sentence %zu: %s\n", o + 1, cmp.occurrences[o].text.c_str());
    for (size_t l = 0; l < cmp.top_attended[o].size(); ++l) {
      std::printf("  layer %zu:", l + 1);
      for (const auto& t : cmp.top_attended[o][l])
        std::printf("  %s(%lld) %.2f", token_label(t.piece).c_str(), (long long)t.position,
                    t.weight);
      std::printf("\n");
    }
  }
}

std::string fixed(double v, int digits) {
  char s[32];
  std::snprintf(s, sizeof s, "%.*f", digits, v);
  return s;
}

void print_senses_table(const SenseProbe& probe) {
  std::string counts;
  for (size_t s = 0; s < probe.senses.size(); ++s) {
    const auto n = std::count(probe.sense_of.begin(), probe.sense_of.end(), int(s));
    counts += (s ? ", " : "") + probe.senses[s] + " " + std::to_string(n);
  }
  std::printf("\"%s\" in %zu sentences (%s); %s\n", probe.word.c_str(), probe.sense_of.size(),
              counts.c_str(),
              probe.same_position
                  ? ("at token position " + std::to_string(probe.occurrences[0].position) +
                     " in every one: position cannot tell them apart")
                        .c_str()
                  : "at different positions: each position's mean is removed");
  std::printf("the word's vector at each level, each position's mean removed (raw: as is)\n");
  std::printf("  %-12s %9s %10s   %-23s %s\n", "level", "distance", "nearest", "cosine (centred)",
              "cosine (raw)");
  std::printf("  %-12s %9s %10s   %-11s %-11s %-11s %s\n", "", "ratio", "centroid", "within",
              "between", "within", "between");
  for (size_t l = 0; l < probe.levels.size(); ++l) {
    const auto& m = probe.separation[l];
    // Identical vectors (the static embedding, and positions at one place): no distance at all.
    const std::string ratio = std::isnan(m.distance_ratio) ? "-" : fixed(m.distance_ratio, 2);
    std::printf("  %-12s %9s %9.0f%%   %-11.3f %-11.3f %-11.3f %.3f\n", probe.levels[l].c_str(),
                ratio.c_str(), 100 * m.nearest_centroid_accuracy, m.cosine_within, m.cosine_between,
                m.raw_cosine_within, m.raw_cosine_between);
  }
  std::printf("\nwhat \"%s\" attends to, per sense (mean weight; position relative to the word)\n",
              probe.word.c_str());
  for (const auto& a : probe.attention)
    for (size_t l = 0; l < a.top.size(); ++l)
      for (size_t h = 0; h < a.top[l].size(); ++h) {
        std::printf("  %-10s layer %zu head %zu:", a.sense.c_str(), l + 1, h + 1);
        for (const auto& t : a.top[l][h])
          std::printf("  %s(%lld) %.2f", token_label(t.piece).c_str(), (long long)t.position,
                      t.weight);
        std::printf("\n");
      }
}

void print_senses_json(const SenseProbe& probe, const std::vector<std::string>& images) {
  nlohmann::json j;
  j["word"] = probe.word;
  j["senses"] = probe.senses;
  j["same_position"] = probe.same_position;
  for (size_t i = 0; i < probe.occurrences.size(); ++i)
    j["sentences"].push_back({{"sense", probe.senses[size_t(probe.sense_of[i])]},
                              {"text", probe.occurrences[i].text},
                              {"position", probe.occurrences[i].position}});
  for (size_t l = 0; l < probe.levels.size(); ++l) {
    const auto& m = probe.separation[l];
    j["levels"].push_back({{"level", probe.levels[l]},
                           {"distance_ratio", m.distance_ratio},
                           {"nearest_centroid_accuracy", m.nearest_centroid_accuracy},
                           {"cosine_within", m.cosine_within},
                           {"cosine_between", m.cosine_between},
                           {"raw_cosine_within", m.raw_cosine_within},
                           {"raw_cosine_between", m.raw_cosine_between}});
  }
  for (const auto& a : probe.attention) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& heads : a.top) {
      nlohmann::json hs = nlohmann::json::array();
      for (const auto& keys : heads) {
        nlohmann::json ks = nlohmann::json::array();
        for (const auto& t : keys)
          ks.push_back({{"offset", t.position}, {"pieces", t.piece}, {"weight", t.weight}});
        hs.push_back(std::move(ks));
      }
      layers.push_back(std::move(hs));
    }
    j["attention"][a.sense] = std::move(layers);
  }
  j["images"] = images;
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

int run_embed_senses(const EmbedArgs& args) {
  const auto sentences = read_sense_sentences(args.senses, args.word);  // before the load
  auto ckpt = load_for_inference(args.checkpoint, args.runtime);
  const auto probe = probe_senses(ckpt.model, *ckpt.tokenizer, sentences, args.word, args.top_k);
  const auto images = write_sense_plots(probe, args.out);
  if (args.json)
    print_senses_json(probe, images);
  else
    print_senses_table(probe);
  spdlog::info("wrote {} PCA plots ({}/{}_pca_static.png, .svg, ...)", images.size(), args.out,
               args.word);
  return 0;
}

}  // namespace

int run_attention(const AttentionArgs& args) {
  auto ckpt = load_for_inference(args.checkpoint, args.runtime);
  const auto& mc = ckpt.config.model;
  if (args.layer < 0 || args.layer > mc.n_layer)
    throw std::invalid_argument("--layer " + std::to_string(args.layer) + ": the model has " +
                                std::to_string(mc.n_layer) + " layers (1.." +
                                std::to_string(mc.n_layer) + "; 0 = all)");
  if (args.head < 0 || args.head > mc.n_head)
    throw std::invalid_argument("--head " + std::to_string(args.head) + ": the model has " +
                                std::to_string(mc.n_head) + " heads (1.." +
                                std::to_string(mc.n_head) + "; 0 = mean and each head)");
  const auto ids = encode_for_inspection(*ckpt.tokenizer, args.text, mc.block_size, "--text");
  const auto map = probe_attention(ckpt.model, *ckpt.tokenizer, ids, args.text);

  std::vector<std::string> labels;
  for (const auto& t : map.tokens) labels.push_back(token_label(t));
  std::printf("text: %s (%lld tokens)\n", args.text.c_str(), (long long)map.length());
  const int64_t first = args.layer > 0 ? args.layer - 1 : 0;
  const int64_t last = args.layer > 0 ? args.layer : map.n_layer;
  for (int64_t l = first; l < last; ++l) {
    std::vector<int64_t> heads;
    if (args.head > 0) {
      heads = {args.head - 1};
    } else {
      heads.push_back(-1);
      for (int64_t h = 0; h < map.n_head; ++h) heads.push_back(h);
    }
    for (int64_t h : heads) {
      std::printf("\nlayer %lld, %s\n", (long long)(l + 1),
                  h < 0 ? "heads averaged" : ("head " + std::to_string(h + 1)).c_str());
      std::fputs(format_attention_table(labels, map.head(l, h)).c_str(), stdout);
    }
  }
  std::fflush(stdout);

  const std::string json_path = args.out + "/attention.json";
  write_file_atomically(json_path, map.to_json());
  const auto images = write_attention_heatmaps(map, args.out);
  spdlog::info(
      "wrote {} ({} layers x {} heads x {} x {} weights) and {} heatmaps ({}/layer1.png, "
      ".svg, ...)",
      json_path, map.n_layer, map.n_head, map.length(), map.length(), images.size(), args.out);
  return 0;
}

int run_embed(const EmbedArgs& args) {
  if (args.top_k <= 0)
    throw std::invalid_argument("--top-k must be positive, got " + std::to_string(args.top_k));
  if (!args.senses.empty()) return run_embed_senses(args);
  if (args.texts.size() < 2)  // before the load: a usage error should fail at once
    throw std::invalid_argument("--text: give at least two sentences to compare, got " +
                                std::to_string(args.texts.size()) + " (or --senses FILE)");
  auto ckpt = load_for_inference(args.checkpoint, args.runtime);
  const auto cmp =
      compare_contextual_embeddings(ckpt.model, *ckpt.tokenizer, args.texts, args.word, args.top_k);

  for (const auto& o : cmp.occurrences) {
    if (o.pieces.size() > 1)
      spdlog::info("\"{}\" in sentence {} is split into {} tokens ({}); using the last, \"{}\"",
                   cmp.word, o.sentence + 1, o.pieces.size(), label_list(o.pieces),
                   token_label(o.piece));
    if (o.occurrences_in_sentence > 1)
      spdlog::info("\"{}\" occurs {} times in sentence {}; using the first", cmp.word,
                   o.occurrences_in_sentence, o.sentence + 1);
  }

  if (args.json)
    print_embed_json(cmp);
  else
    print_embed_table(cmp);
  return 0;
}

int run_report(const ReportArgs& args) {
  if (args.options.sample_tokens <= 0)
    throw std::invalid_argument("--sample-tokens must be positive");
  start_runtime(args.runtime.threads);
  TrainingReportOptions options = args.options;
  options.device = args.runtime.device;
  const std::string path = write_training_report(args.run_dir, options);
  spdlog::info("wrote {}", path);
  std::printf("%s\n", path.c_str());
  return 0;
}

}  // namespace qkv::cli
