#pragma once

#include <string>
#include <vector>

#include "qkv/inspect/sense_probe.h"

namespace qkv {

// The word's position-centred vectors on their first two principal components, one chart per
// level of the model, one colour per sense: DIR/WORD_pca_LEVEL.png and .svg (LEVEL: static,
// positions, layer1.., final_norm). Creates DIR; returns the paths written.
std::vector<std::string> write_sense_plots(const SenseProbe& probe, const std::string& dir);

}  // namespace qkv
