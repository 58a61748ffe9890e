// The one table of configuration keys: parsing, key=value overrides, range checks and the resolved
// config written into a run all go through it, so a new knob is added in exactly one place.
#include "config_schema.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace qkv {

namespace {

std::string shown(const YAML::Node& node) {
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "nothing";
}

int64_t as_int(const YAML::Node& node) {
  try {
    if (node.IsScalar()) return node.as<int64_t>();
  } catch (const YAML::Exception&) {
  }
  throw std::invalid_argument("expected an integer, got " + shown(node));
}

double as_real(const YAML::Node& node) {
  try {
    if (node.IsScalar()) return node.as<double>();
  } catch (const YAML::Exception&) {
  }
  throw std::invalid_argument("expected a number, got " + shown(node));
}

bool as_bool(const YAML::Node& node) {
  try {
    if (node.IsScalar()) return node.as<bool>();
  } catch (const YAML::Exception&) {
  }
  throw std::invalid_argument("expected true or false, got " + shown(node));
}

std::string as_string(const YAML::Node& node) {
  if (!node.IsScalar()) throw std::invalid_argument("expected a string, got " + shown(node));
  return node.Scalar();
}

std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

using IntRef = int64_t& (*)(Config&);
using RealRef = double& (*)(Config&);
using BoolRef = bool& (*)(Config&);
using StringRef = std::string& (*)(Config&);

ConfigField int_field(const char* key, IntRef ref, int64_t min,
                      int64_t max = std::numeric_limits<int64_t>::max()) {
  return {key,
          [=](Config& c, const YAML::Node& n) {
            int64_t v = as_int(n);
            if (v < min || v > max)
              throw std::invalid_argument(
                  "expected an integer " +
                  (max == std::numeric_limits<int64_t>::max()
                       ? ">= " + std::to_string(min)
                       : "in [" + std::to_string(min) + ", " + std::to_string(max) + "]") +
                  ", got " + std::to_string(v));
            ref(c) = v;
          },
          [=](const Config& c, YAML::Emitter& e) { e << ref(const_cast<Config&>(c)); }};
}

// A real number in [min, max) (or [min, max] when max_inclusive).
ConfigField real_field(const char* key, RealRef ref, double min, double max, bool max_inclusive) {
  return {key,
          [=](Config& c, const YAML::Node& n) {
            double v = as_real(n);
            bool ok = std::isfinite(v) && v >= min && (max_inclusive ? v <= max : v < max);
            if (!ok)
              throw std::invalid_argument("expected a number in [" + number(min) + ", " +
                                          (std::isinf(max) ? "inf" : number(max)) +
                                          (max_inclusive ? "]" : ")") + ", got " + number(v));
            ref(c) = v;
          },
          [=](const Config& c, YAML::Emitter& e) { e << ref(const_cast<Config&>(c)); }};
}

ConfigField bool_field(const char* key, BoolRef ref) {
  return {key, [=](Config& c, const YAML::Node& n) { ref(c) = as_bool(n); },
          [=](const Config& c, YAML::Emitter& e) { e << ref(const_cast<Config&>(c)); }};
}

ConfigField string_field(const char* key, StringRef ref, std::vector<std::string> choices = {}) {
  return {key,
          [=](Config& c, const YAML::Node& n) {
            std::string v = as_string(n);
            if (!choices.empty() && std::find(choices.begin(), choices.end(), v) == choices.end()) {
              std::string list;
              for (const auto& ch : choices) list += (list.empty() ? "'" : ", '") + ch + "'";
              throw std::invalid_argument("expected one of " + list + ", got '" + v + "'");
            }
            ref(c) = v;
          },
          [=](const Config& c, YAML::Emitter& e) {
            e << YAML::DoubleQuoted << ref(const_cast<Config&>(c));
          }};
}

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();

}  // namespace

const std::vector<ConfigField>& config_schema() {
  static const std::vector<ConfigField> fields = {
      int_field(
          "model.vocab_size", [](Config& c) -> int64_t& { return c.model.vocab_size; }, 0),
      int_field(
          "model.block_size", [](Config& c) -> int64_t& { return c.model.block_size; }, 1),
      int_field(
          "model.n_layer", [](Config& c) -> int64_t& { return c.model.n_layer; }, 1),
      int_field(
          "model.n_head", [](Config& c) -> int64_t& { return c.model.n_head; }, 1),
      int_field(
          "model.d_model", [](Config& c) -> int64_t& { return c.model.d_model; }, 1),
      int_field(
          "model.d_ff", [](Config& c) -> int64_t& { return c.model.d_ff; }, 0),
      real_field(
          "model.dropout", [](Config& c) -> double& { return c.model.dropout; }, 0, 1, false),
      bool_field("model.bias", [](Config& c) -> bool& { return c.model.bias; }),
      bool_field("model.tie_weights", [](Config& c) -> bool& { return c.model.tie_weights; }),
      string_field("model.activation", [](Config& c) -> std::string& { return c.model.activation; },
                   {"gelu", "gelu_tanh"}),
      bool_field("model.scale_embeddings",
                 [](Config& c) -> bool& { return c.model.scale_embeddings; }),
      {"model.positional_encoding",
       [](Config& c, const YAML::Node& n) {
         c.model.positional_encoding = positional_encoding_from_string(as_string(n));
       },
       [](const Config& c, YAML::Emitter& e) {
         e << YAML::DoubleQuoted << to_string(c.model.positional_encoding);
       }},

      string_field("tokenizer.kind", [](Config& c) -> std::string& { return c.tokenizer.kind; },
                   {"char", "word", "sentencepiece", "bpe"}),
      string_field("tokenizer.model_file",
                   [](Config& c) -> std::string& { return c.tokenizer.model_file; }),
      int_field(
          "tokenizer.vocab_size", [](Config& c) -> int64_t& { return c.tokenizer.vocab_size; }, 8,
          1 << 22),
      string_field("tokenizer.model_type",
                   [](Config& c) -> std::string& { return c.tokenizer.model_type; },
                   {"bpe", "unigram"}),
      real_field(
          "tokenizer.character_coverage",
          [](Config& c) -> double& { return c.tokenizer.character_coverage; }, 0.9, 1, true),
      bool_field("tokenizer.byte_fallback",
                 [](Config& c) -> bool& { return c.tokenizer.byte_fallback; }),
      int_field(
          "tokenizer.input_sentence_size",
          [](Config& c) -> int64_t& { return c.tokenizer.input_sentence_size; }, 1),

      {"data.files",
       [](Config& c, const YAML::Node& n) {
         std::vector<std::string> files;
         if (n.IsScalar()) {
           files.push_back(n.Scalar());
         } else if (n.IsSequence()) {
           for (const auto& item : n) files.push_back(as_string(item));
         } else {
           throw std::invalid_argument("expected a path or a list of paths, got " + shown(n));
         }
         c.data.files = files;
       },
       [](const Config& c, YAML::Emitter& e) {
         e << YAML::Flow << YAML::BeginSeq;
         for (const auto& f : c.data.files) e << YAML::DoubleQuoted << f;
         e << YAML::EndSeq;
       }},
      string_field("data.dir", [](Config& c) -> std::string& { return c.data.dir; }),
      real_field(
          "data.val_fraction", [](Config& c) -> double& { return c.data.val_fraction; }, 0, 1,
          false),
      string_field("data.generate", [](Config& c) -> std::string& { return c.data.generate; },
                   {"none", "senses"}),

      int_field(
          "train.batch_size", [](Config& c) -> int64_t& { return c.train.batch_size; }, 1),
      int_field(
          "train.max_steps", [](Config& c) -> int64_t& { return c.train.max_steps; }, 1),
      int_field(
          "train.grad_accum_steps", [](Config& c) -> int64_t& { return c.train.grad_accum_steps; },
          1),
      real_field(
          "train.grad_clip", [](Config& c) -> double& { return c.train.grad_clip; }, 0, kInf,
          false),
      int_field(
          "train.log_every", [](Config& c) -> int64_t& { return c.train.log_every; }, 1),
      string_field("train.out_dir", [](Config& c) -> std::string& { return c.train.out_dir; }),
      string_field("train.init_from", [](Config& c) -> std::string& { return c.train.init_from; }),

      real_field(
          "optim.lr", [](Config& c) -> double& { return c.optim.lr; }, 0, kInf, false),
      real_field(
          "optim.min_lr", [](Config& c) -> double& { return c.optim.min_lr; }, 0, kInf, false),
      int_field(
          "optim.warmup_steps", [](Config& c) -> int64_t& { return c.optim.warmup_steps; }, 0),
      int_field(
          "optim.decay_steps", [](Config& c) -> int64_t& { return c.optim.decay_steps; }, 0),
      real_field(
          "optim.beta1", [](Config& c) -> double& { return c.optim.beta1; }, 0, 1, false),
      real_field(
          "optim.beta2", [](Config& c) -> double& { return c.optim.beta2; }, 0, 1, false),
      real_field(
          "optim.eps", [](Config& c) -> double& { return c.optim.eps; }, 0, 1, false),
      real_field(
          "optim.weight_decay", [](Config& c) -> double& { return c.optim.weight_decay; }, 0, kInf,
          false),

      int_field(
          "eval.every", [](Config& c) -> int64_t& { return c.eval.every; }, 1),
      int_field(
          "eval.batches", [](Config& c) -> int64_t& { return c.eval.batches; }, 1),

      int_field(
          "checkpoint.every", [](Config& c) -> int64_t& { return c.checkpoint.every; }, 0),
      bool_field("checkpoint.keep_periodic",
                 [](Config& c) -> bool& { return c.checkpoint.keep_periodic; }),
      bool_field("checkpoint.report", [](Config& c) -> bool& { return c.checkpoint.report; }),
      bool_field("runtime.cuda_graph", [](Config& c) -> bool& { return c.runtime.cuda_graph; }),

      int_field(
          "runtime.threads", [](Config& c) -> int64_t& { return c.runtime.threads; }, 0, 1024),
      string_field("runtime.kernels", [](Config& c) -> std::string& { return c.runtime.kernels; },
                   {"auto", "fused", "reference"}),
      string_field("runtime.device", [](Config& c) -> std::string& { return c.runtime.device; },
                   {"auto", "cpu", "cuda"}),
      int_field(
          "runtime.seed", [](Config& c) -> int64_t& { return c.runtime.seed; }, 0, kMaxInt),
      {"runtime.dtype",
       [](Config& c, const YAML::Node& n) {
         c.runtime.dtype = compute_dtype_from_string(as_string(n));
       },
       [](const Config& c, YAML::Emitter& e) {
         e << YAML::DoubleQuoted << to_string(c.runtime.dtype);
       }},
      string_field("runtime.backend", [](Config& c) -> std::string& { return c.runtime.backend; },
                   {"auto", "gloo", "nccl"}),
      int_field(
          "runtime.timeout_s", [](Config& c) -> int64_t& { return c.runtime.timeout_s; }, 1,
          7 * 24 * 3600),
      int_field(
          "runtime.bucket_mb", [](Config& c) -> int64_t& { return c.runtime.bucket_mb; }, 1,
          1 << 16),
      bool_field("runtime.overlap_allreduce",
                 [](Config& c) -> bool& { return c.runtime.overlap_allreduce; }),
  };
  return fields;
}

}  // namespace qkv
