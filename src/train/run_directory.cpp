#include "qkv/train/run_directory.h"

#include <spdlog/sinks/basic_file_sink.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "qkv/io/file_bytes.h"

namespace qkv {

namespace {

// metrics.jsonl cut back to the records of steps up to `step`: a resumed run replays the steps
// after its checkpoint, which must not stand twice. Torn or foreign lines are dropped.
std::string metrics_up_to(const std::string& path, int64_t step) {
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
        j["step"].get<int64_t>() <= step)
      kept += line + "\n";
  }
  return kept;
}

}  // namespace

RunDirectory::RunDirectory(std::string path)
    : path_(std::move(path)),
      lock_(path_),
      early_log_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000)) {
  remove_stale_temporary_files(path_);
}

std::string RunDirectory::recorded_run_id() const {
  if (!std::filesystem::exists(file("run_id"))) return "";
  std::string id = read_file_bytes(file("run_id"));
  id.erase(std::remove_if(id.begin(), id.end(), [](char c) { return std::isspace(c); }), id.end());
  return id;
}

void RunDirectory::begin(const Config& config, const std::string& run_id, int64_t resumed_from,
                         spdlog::logger& log) {
  write_file_atomically(file("run_id"), run_id + "\n");
  write_file_atomically(file("config.yaml"), config.to_yaml());
  const std::string metrics_path = file("metrics.jsonl");
  write_file_atomically(metrics_path,
                        resumed_from < 0 ? "" : metrics_up_to(metrics_path, resumed_from));
  metrics_.open(metrics_path, std::ios::app);
  flushed_ = std::chrono::steady_clock::now();
  const std::string log_path = file("train.log");
  {
    std::ofstream out(log_path, std::ios::app);
    for (const auto& line : early_log_->last_formatted()) out << line;
    out.flush();
    if (!out) throw RunWriteError("cannot write " + log_path + ": " + std::strerror(errno));
  }
  auto& sinks = log.sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), early_log_), sinks.end());
  sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_path));
}

void RunDirectory::append_metrics(const nlohmann::json& record) {
  metrics_ << record.dump() << "\n";
  if (std::chrono::steady_clock::now() - flushed_ > std::chrono::seconds(1)) flush_metrics();
}

void RunDirectory::flush_metrics() {
  if (!metrics_.is_open()) return;
  metrics_.flush();
  flushed_ = std::chrono::steady_clock::now();
  if (!metrics_)
    throw RunWriteError("cannot write " + file("metrics.jsonl") + ": " + std::strerror(errno));
}

std::string new_run_id() {
  std::random_device entropy;
  std::mt19937_64 rng((uint64_t(entropy()) << 32) ^ entropy());
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(rng()));
  return id;
}

}  // namespace qkv
