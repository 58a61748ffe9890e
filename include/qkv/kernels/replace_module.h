#pragma once

#include <memory>
#include <string>

#include <torch/nn/module.h>

namespace qkv {

// Puts `module` into `parent` under `name`, in place of the module that `field` (the parent's
// typed member of that name) holds. Both must change: forward calls go through the field,
// parameters(), to() and checkpoints through the registered child. Returns `module`.
template <typename Holder, typename Impl>
std::shared_ptr<Impl> replace_module(torch::nn::Module& parent, const std::string& name,
                                     Holder& field, std::shared_ptr<Impl> module) {
  parent.replace_module(name, module);
  field = Holder(std::shared_ptr<typename Holder::ContainedType>(module));
  return module;
}

}  // namespace qkv
