#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qkv {

// A run's metrics.jsonl read back as columns. A resumed run may have logged steps past its last
// checkpoint before it stopped; when step numbers go back, the later records replace them.
struct RunMetrics {
  struct Step {
    int64_t step;
    double loss, lr, grad_norm, ms, tokens_per_s;
  };
  struct Eval {
    int64_t step;
    double train_loss, val_loss;
  };
  std::vector<Step> steps;
  std::vector<Eval> evals;

  // Throws std::invalid_argument naming path:line for a record that is not valid JSON with the
  // expected fields. A torn last line (the run was killed mid-write) is skipped.
  static RunMetrics load(const std::string& path);
  // The same from the file's text; `path` names it in messages.
  static RunMetrics parse(const std::string& text, const std::string& path);
};

}  // namespace qkv
