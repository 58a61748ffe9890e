#include "qkv/train/checkpoint_meta.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "qkv/data/json_integer.h"

namespace qkv {

using nlohmann::json;

std::string CheckpointMeta::to_json() const {
  return json({{"format", "qkv-checkpoint"},
               {"qkv_version", qkv_version},
               {"step", step},
               {"best_val_loss", std::isfinite(best_val_loss) ? json(best_val_loss) : json()},
               {"best_step", best_step},
               {"sampler_state", sampler_state},
               {"world_size", world_size},
               {"tokenizer_kind", tokenizer_kind},
               {"run_id", run_id}})
      .dump();
}

CheckpointMeta CheckpointMeta::parse(const std::string& text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) throw std::invalid_argument("its metadata is not a JSON object");
  if (j.value("format", json()) != "qkv-checkpoint")
    throw std::invalid_argument("not a qkv checkpoint");
  CheckpointMeta m;
  try {
    m.step = json_integer(j, "step", 0);
    m.best_val_loss = j.contains("best_val_loss") && j["best_val_loss"].is_number()
                          ? j["best_val_loss"].get<double>()
                          : INFINITY;
    m.best_step = json_integer(j, "best_step", -1);
    m.sampler_state = j.value("sampler_state", "");
    m.world_size = json_integer(j, "world_size", 1);
    m.tokenizer_kind = j.at("tokenizer_kind").get<std::string>();
    m.qkv_version = j.value("qkv_version", "");
    m.run_id = j.value("run_id", "");
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("bad metadata: ") + e.what());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("bad metadata: ") + e.what());
  }
  if (m.world_size < 1)
    throw std::invalid_argument("bad metadata: world_size " + std::to_string(m.world_size));
  if (m.step < 0 || m.best_step < -1 || m.best_step > m.step)
    throw std::invalid_argument("bad metadata: step " + std::to_string(m.step) + ", best step " +
                                std::to_string(m.best_step));
  return m;
}

}  // namespace qkv
