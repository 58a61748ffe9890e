#include "qkv/inspect/sense_probe.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <stdexcept>

#include "qkv/inspect/attention_probe.h"

namespace qkv {

namespace {

// Rows scaled to length 1 (a zero row stays zero): their products are cosines.
torch::Tensor unit_rows(const torch::Tensor& x) {
  return x / x.norm(2, 1, /*keepdim=*/true).clamp_min(1e-300);
}

// Mean of m[i][j] over pairs i < j of the same sense, and of different senses.
std::pair<double, double> pair_means(const torch::Tensor& m, const std::vector<int>& sense) {
  const auto a = m.accessor<double, 2>();
  double same = 0, other = 0;
  int64_t n_same = 0, n_other = 0;
  for (size_t i = 0; i < sense.size(); ++i)
    for (size_t j = i + 1; j < sense.size(); ++j) {
      if (sense[i] == sense[j])
        same += a[int64_t(i)][int64_t(j)], ++n_same;
      else
        other += a[int64_t(i)][int64_t(j)], ++n_other;
    }
  return {same / double(n_same), other / double(n_other)};
}

// Leave-one-out nearest centroid over the rows of c.
double nearest_centroid_accuracy(const torch::Tensor& c, const std::vector<int>& sense, int S) {
  std::vector<torch::Tensor> sums;  // one tensor each (a vector's fill would share one)
  for (int s = 0; s < S; ++s) sums.push_back(torch::zeros({c.size(1)}, torch::kFloat64));
  std::vector<int64_t> counts(size_t(S), 0);
  for (size_t i = 0; i < sense.size(); ++i) {
    sums[size_t(sense[i])] += c[int64_t(i)];
    ++counts[size_t(sense[i])];
  }
  int64_t right = 0;
  for (size_t i = 0; i < sense.size(); ++i) {
    int best = -1;
    double best_distance = 0;
    for (int s = 0; s < S; ++s) {
      const bool own = s == sense[i];
      const auto centroid = (sums[size_t(s)] - (own ? c[int64_t(i)] : torch::zeros_like(c[0]))) /
                            double(counts[size_t(s)] - (own ? 1 : 0));
      const double distance = (c[int64_t(i)] - centroid).norm().item<double>();
      if (best < 0 || distance < best_distance) best = s, best_distance = distance;
    }
    right += best == sense[i];
  }
  return double(right) / double(sense.size());
}

// The rows (centred once more overall) on their first two principal components, each
// component's sign fixed so that its largest coefficient is positive (SVD's sign is arbitrary).
torch::Tensor principal_plane(const torch::Tensor& c) {
  const auto centred = c - c.mean(0, /*keepdim=*/true);
  auto [u, s, v] = torch::svd(centred);  // centred = u diag(s) v^T
  const int64_t k = std::min<int64_t>(2, v.size(1));
  auto axes = v.slice(1, 0, k).clone();  // (C, k)
  for (int64_t j = 0; j < k; ++j) {
    const auto column = axes.select(1, j);
    if (column[column.abs().argmax()].item<double>() < 0) column.neg_();
  }
  auto plane = centred.matmul(axes);
  if (k < 2) plane = torch::cat({plane, torch::zeros({plane.size(0), 2 - k}, plane.options())}, 1);
  return plane;
}

}  // namespace

SenseSeparation measure_sense_separation(const torch::Tensor& vectors,
                                         const std::vector<int>& sense,
                                         const std::vector<int64_t>& position) {
  const int64_t n = vectors.size(0);
  if (int64_t(sense.size()) != n || int64_t(position.size()) != n)
    throw std::invalid_argument("sense separation: one sense and one position per vector");
  const int S = sense.empty() ? 0 : *std::max_element(sense.begin(), sense.end()) + 1;
  std::vector<int64_t> counts(size_t(std::max(S, 0)), 0);
  for (int s : sense) ++counts[size_t(s)];
  if (S < 2 || *std::min_element(counts.begin(), counts.end()) < 2)
    throw std::invalid_argument(
        "sense separation: needs at least two senses, each in at least two sentences");

  const auto x = vectors.detach().to(torch::kCPU, torch::kFloat64).reshape({n, -1});
  auto c = x.clone();  // centred at each position
  std::map<int64_t, std::vector<int64_t>> at_position;
  for (int64_t i = 0; i < n; ++i) at_position[position[size_t(i)]].push_back(i);
  for (const auto& [p, rows] : at_position) {
    const auto index = torch::tensor(rows, torch::kLong);
    c.index_put_({index}, x.index({index}) - x.index({index}).mean(0, /*keepdim=*/true));
  }

  SenseSeparation out;
  const auto [within, between] = pair_means(torch::cdist(c, c), sense);
  out.distance_ratio = between / within;
  out.nearest_centroid_accuracy = nearest_centroid_accuracy(c, sense, S);
  const auto cu = unit_rows(c), xu = unit_rows(x);
  std::tie(out.cosine_within, out.cosine_between) = pair_means(cu.matmul(cu.t()), sense);
  std::tie(out.raw_cosine_within, out.raw_cosine_between) = pair_means(xu.matmul(xu.t()), sense);
  out.pca = principal_plane(c);
  return out;
}

std::vector<SenseSentence> read_sense_sentences(const std::string& path, const std::string& word) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot read the probe sentences");
  std::vector<SenseSentence> out;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    std::vector<std::string> fields;
    for (size_t start = 0;;) {
      const size_t tab = line.find('\t', start);
      fields.push_back(line.substr(start, tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    if (fields.size() == 2 && !fields[0].empty() && !fields[1].empty())
      out.push_back({fields[0], fields[1]});
    else if (fields.size() == 3 && !fields[1].empty() && !fields[2].empty()) {
      if (fields[0] == word) out.push_back({fields[1], fields[2]});
    } else
      throw std::invalid_argument(path + ":" + std::to_string(number) +
                                  ": expected SENSE<TAB>SENTENCE or WORD<TAB>SENSE<TAB>SENTENCE");
  }
  if (out.empty()) throw std::invalid_argument(path + ": no probe sentence for \"" + word + "\"");
  return out;
}

}  // namespace qkv

namespace qkv {

namespace {

// Pools attention by the key's offset before the word (0: the word itself): the context words
// differ between sentences, their place does not.
struct OffsetPool {
  double weight = 0;
  std::vector<std::string> pieces;  // distinct, in order of appearance
};

std::string pooled_label(const std::vector<std::string>& pieces) {
  std::string label;
  for (size_t i = 0; i < pieces.size() && i < 3; ++i) label += (i ? "/" : "") + pieces[i];
  return pieces.size() > 3 ? label + "/..." : label;
}

}  // namespace

SenseProbe probe_senses(TransformerLM& model, const Tokenizer& tokenizer,
                        const std::vector<SenseSentence>& sentences, const std::string& word,
                        int top_k) {
  SenseProbe out;
  out.word = word;
  const auto& mc = model->config();
  out.levels = {"static", "+ positions"};
  for (int64_t l = 0; l < mc.n_layer; ++l) out.levels.push_back("layer " + std::to_string(l + 1));
  out.levels.push_back("final norm");

  std::vector<std::vector<torch::Tensor>> vectors(out.levels.size());
  std::vector<int64_t> positions;
  // [sense][layer][head][offset]
  std::vector<std::vector<std::vector<std::map<int64_t, OffsetPool>>>> pools;
  std::vector<int64_t> sentences_of_sense;
  torch::NoGradGuard no_grad;
  for (size_t s = 0; s < sentences.size(); ++s) {
    const auto& text = sentences[s].text;
    const std::string what = "probe sentence " + std::to_string(s + 1) + " (\"" + text + "\")";
    auto it = std::find(out.senses.begin(), out.senses.end(), sentences[s].sense);
    const int sense = static_cast<int>(it - out.senses.begin());
    if (it == out.senses.end()) {
      out.senses.push_back(sentences[s].sense);
      pools.emplace_back(size_t(mc.n_layer),
                         std::vector<std::map<int64_t, OffsetPool>>(size_t(mc.n_head)));
      sentences_of_sense.push_back(0);
    }
    ++sentences_of_sense[size_t(sense)];
    const auto ids = encode_for_inspection(tokenizer, text, mc.block_size, what);
    auto occ = locate_word(tokenizer, ids, text, s, word, what);
    const int64_t p = occ.position;
    const auto capture = run_for_inspection(model, ids);
    vectors[0].push_back(capture.token_embeddings[0][p]);
    vectors[1].push_back(capture.input_embeddings[0][p]);
    for (size_t l = 0; l < capture.hidden_states.size(); ++l)
      vectors[2 + l].push_back(capture.hidden_states[l][0][p]);
    vectors.back().push_back(model->ln_f(capture.hidden_states.back()[0][p]));
    for (int64_t l = 0; l < mc.n_layer; ++l) {
      const auto w = capture.attention_weights[size_t(l)][0].to(torch::kCPU, torch::kFloat64);
      for (int64_t h = 0; h < mc.n_head; ++h)
        for (int64_t key = 0; key <= p; ++key) {
          auto& pool = pools[size_t(sense)][size_t(l)][size_t(h)][p - key];
          pool.weight += w[h][p][key].item<double>();
          const auto piece = tokenizer.piece(ids[size_t(key)]);
          if (std::find(pool.pieces.begin(), pool.pieces.end(), piece) == pool.pieces.end())
            pool.pieces.push_back(piece);
        }
    }
    if (!positions.empty() && p != positions.front()) out.same_position = false;
    positions.push_back(p);
    out.sense_of.push_back(sense);
    out.occurrences.push_back(std::move(occ));
  }
  for (auto& level : vectors)
    out.separation.push_back(
        measure_sense_separation(torch::stack(level), out.sense_of, positions));

  for (size_t s = 0; s < out.senses.size(); ++s) {
    SenseAttention a;
    a.sense = out.senses[s];
    for (const auto& layer : pools[s]) {
      std::vector<std::vector<AttendedToken>> heads;
      for (const auto& head : layer) {
        std::vector<AttendedToken> keys;
        for (const auto& [offset, pool] : head)
          keys.push_back(
              {-offset, pooled_label(pool.pieces), pool.weight / double(sentences_of_sense[s])});
        std::sort(keys.begin(), keys.end(), [](const AttendedToken& x, const AttendedToken& y) {
          return x.weight > y.weight;
        });
        if (int64_t(keys.size()) > top_k) keys.resize(size_t(top_k));
        heads.push_back(std::move(keys));
      }
      a.top.push_back(std::move(heads));
    }
    out.attention.push_back(std::move(a));
  }
  return out;
}

}  // namespace qkv
