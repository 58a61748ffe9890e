#include "qkv/config/config.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "config_schema.h"

namespace qkv {

namespace {

const ConfigField* find_field(const std::string& key) {
  for (const auto& f : config_schema())
    if (f.key == key) return &f;
  return nullptr;
}

std::string unknown_key_message(const std::string& key) {
  std::string msg = "unknown key '" + key + "'";
  std::string guess = closest_match(key, Config::known_keys());
  if (!guess.empty()) msg += " (did you mean '" + guess + "'?)";
  return msg;
}

// Sets one key; throws std::invalid_argument saying what is wrong, the key named, no location.
void set_key(Config& c, const std::string& key, const YAML::Node& value) {
  const ConfigField* field = find_field(key);
  if (!field) throw std::invalid_argument(unknown_key_message(key));
  try {
    field->set(c, value);
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    // Messages that already name the key (model.*) are kept; others get the key in front.
    if (what.rfind(key, 0) == 0) throw;
    throw std::invalid_argument(key + ": " + what);
  }
}

void apply_yaml(Config& c, const YAML::Node& root, const std::string& where) {
  if (!root || root.IsNull()) return;
  if (!root.IsMap()) throw ConfigError(where + ": expected a mapping of sections at the top level");
  // YAML forbids a key twice in one mapping; yaml-cpp keeps both and the later would silently win.
  std::map<std::string, int> first_line;
  auto once = [&](const std::string& key, const YAML::Node& node) {
    const int line = node.Mark().line + 1;
    auto [it, fresh] = first_line.emplace(key, line);
    if (!fresh)
      throw ConfigError(where + ":" + std::to_string(line) + ": " + key +
                        " is given twice (first at line " + std::to_string(it->second) + ")");
  };
  // A key may be any YAML node ("? [a, b]: 1"); qkv's keys are names.
  auto name_of = [&](const YAML::Node& key) {
    if (!key.IsScalar())
      throw ConfigError(where + ":" + std::to_string(key.Mark().line + 1) +
                        ": expected a key name, got a " + (key.IsMap() ? "mapping" : "list"));
    return key.Scalar();
  };
  for (const auto& section : root) {
    const std::string name = name_of(section.first);
    once(name, section.first);
    if (!section.second.IsMap()) {
      bool known = false;
      for (const auto& k : Config::known_keys()) known |= k.rfind(name + ".", 0) == 0;
      throw ConfigError(
          where + ": " +
          (known ? name + ": expected a mapping of keys" : unknown_key_message(name)));
    }
    for (const auto& entry : section.second) {
      const std::string key = name + "." + name_of(entry.first);
      once(key, entry.first);
      try {
        set_key(c, key, entry.second);
      } catch (const std::invalid_argument& e) {
        throw ConfigError(where + ":" + std::to_string(entry.first.Mark().line + 1) + ": " +
                          e.what());
      }
    }
  }
}

}  // namespace

ConfigError ConfigError::in_override(const std::string& assignment, const std::string& detail) {
  ConfigError e("override " + assignment + ": " + detail);
  e.assignment_ = assignment;
  e.detail_ = detail;
  return e;
}

std::string to_string(ComputeDtype dtype) {
  return dtype == ComputeDtype::kBf16 ? "bf16" : "fp32";
}

ComputeDtype compute_dtype_from_string(const std::string& name) {
  if (name == "fp32") return ComputeDtype::kFp32;
  if (name == "bf16") return ComputeDtype::kBf16;
  throw std::invalid_argument("expected one of 'fp32', 'bf16', got '" + name + "'");
}

std::vector<std::string> Config::known_keys() {
  std::vector<std::string> keys;
  for (const auto& f : config_schema()) keys.push_back(f.key);
  return keys;
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = std::max<size_t>(3, word.size() / 3) + 1;  // farther than this is no guess
  for (const auto& c : candidates) {
    size_t d = distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

Config Config::parse(const std::string& yaml, const std::string& source) {
  Config c;
  c.source = source;
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  apply_yaml(c, root, source);
  return c;
}

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  if (!std::filesystem::is_regular_file(path)) throw ConfigError(path + ": config file not found");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  Config c;
  c.source = path;
  apply_yaml(c, root, path);
  for (const auto& o : overrides) c.apply_override(o);
  if (c.train.out_dir.empty())
    c.train.out_dir = "runs/" + std::filesystem::path(path).stem().string();
  c.validate();
  return c;
}

void Config::apply_override(const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError::in_override(assignment, "expected section.key=value");
  const std::string key = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError::in_override(assignment, "invalid value: " + e.msg);
  }
  if (!value || value.IsNull()) value = YAML::Node(assignment.substr(eq + 1));
  try {
    set_key(*this, key, value);
  } catch (const std::invalid_argument& e) {
    throw ConfigError::in_override(assignment, e.what());
  }
}

void Config::validate() const {
  const std::string where = source.empty() ? "config" : source;
  ModelConfig m = model;
  if (m.vocab_size == 0) m.vocab_size = 1;  // filled in from the tokenizer at training time
  try {
    m.validate();
  } catch (const std::invalid_argument& e) {
    throw ConfigError(where + ": " + e.what());
  }
  if (optim.min_lr > optim.lr)
    throw ConfigError(where + ": optim.min_lr (" + std::to_string(optim.min_lr) +
                      ") must not exceed optim.lr (" + std::to_string(optim.lr) + ")");
  if (data.files.empty()) throw ConfigError(where + ": data.files: expected at least one file");
  if (data.dir.empty())
    throw ConfigError(where + ": data.dir: expected a directory for token files");
}

std::string Config::to_yaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string section;
  for (const auto& f : config_schema()) {
    std::string s = f.key.substr(0, f.key.find('.'));
    if (s != section) {
      if (!section.empty()) out << YAML::EndMap;
      out << YAML::Key << s << YAML::Value << YAML::BeginMap;
      section = s;
    }
    out << YAML::Key << f.key.substr(f.key.find('.') + 1) << YAML::Value;
    f.emit(*this, out);
  }
  out << YAML::EndMap << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace qkv
