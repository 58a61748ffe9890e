#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "qkv/config/config.h"

namespace qkv {

struct TrainingReportOptions {
  // The text whose attention heatmaps the report shows; empty: a line from the start of the
  // run's validation text (or, when the data is gone, the start of the generated sample).
  std::string attention_text;
  int64_t attention_tokens = 24;  // longer texts are cut: heatmaps stay readable
  int64_t sample_tokens = 300;
  double temperature = 0.8;
  int64_t top_k = 0;
  uint64_t seed = 1337;
  std::string device = "cpu";  // where the sample and the attention are computed: auto, cpu, cuda
};

// Writes RUN_DIR/report.html: one self-contained page (images embedded as data URIs, no network
// needed) with the best validation loss and its step, the loss curves (linear and log scale),
// the learning-rate schedule, tokens/s over the run, a sample generated from the best
// checkpoint, the attention heatmaps of a short text, and the resolved config. Written
// atomically; returns its path. Throws std::invalid_argument naming what is missing.
std::string write_training_report(const std::string& run_dir,
                                  const TrainingReportOptions& options = {});

// An observer for TrainerOptions::after_checkpoint that writes the run's report.html whenever the
// trainer calls it (at the end of every run, and at each periodic checkpoint when
// checkpoint.report is true). It returns "report: PATH" for the run's log.
std::function<std::string(const Config&, bool)> report_after_checkpoint(
    TrainingReportOptions options = {});

}  // namespace qkv
