// metrics.jsonl on arbitrary bytes: std::invalid_argument naming a line, or columns in step order.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "qkv/report/run_metrics.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto m = qkv::RunMetrics::parse(std::string(reinterpret_cast<const char*>(data), size),
                                          "metrics.jsonl");
    // Records of a resumed run replace the later ones: steps only ever increase.
    for (size_t i = 1; i < m.steps.size(); ++i)
      if (m.steps[i].step <= m.steps[i - 1].step) __builtin_trap();
    for (size_t i = 1; i < m.evals.size(); ++i)
      if (m.evals[i].step <= m.evals[i - 1].step) __builtin_trap();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
