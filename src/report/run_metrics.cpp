#include "qkv/report/run_metrics.h"

#include "qkv/data/json_integer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace qkv {

namespace {

template <typename Record>
void drop_from(std::vector<Record>& records, int64_t step) {
  while (!records.empty() && records.back().step >= step) records.pop_back();
}

}  // namespace

RunMetrics RunMetrics::load(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw std::invalid_argument("cannot read " + path);
  std::stringstream text;
  text << file.rdbuf();
  return parse(text.str(), path);
}

RunMetrics RunMetrics::parse(const std::string& text, const std::string& path) {
  std::istringstream in(text);
  RunMetrics m;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    const bool last = in.peek() == std::char_traits<char>::eof();
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      if (last) break;  // a run killed while appending leaves a partial last line
      throw std::invalid_argument(path + ":" + std::to_string(number) + ": not a JSON record");
    }
    try {
      const std::string type = j.at("type").get<std::string>();
      const int64_t step = json_integer(j, "step");
      if (type == "step") {
        drop_from(m.steps, step);
        m.steps.push_back({step, j.at("loss").get<double>(), j.at("lr").get<double>(),
                           j.value("grad_norm", 0.0), j.value("ms", 0.0),
                           j.value("tokens_per_s", 0.0)});
      } else if (type == "eval") {
        drop_from(m.evals, step);
        m.evals.push_back({step, j.at("train_loss").get<double>(), j.at("val_loss").get<double>()});
      }
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(path + ":" + std::to_string(number) + ": " + e.what());
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(path + ":" + std::to_string(number) + ": " + e.what());
    }
  }
  return m;
}

}  // namespace qkv
