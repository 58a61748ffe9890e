#pragma once

#include <torch/nn/modules/dropout.h>

#include "qkv/kernels/dropout.h"
#include "qkv/kernels/kernel_path.h"

namespace qkv {

// What `module` does to x, drawn by qkv's parallel kernel (kernels/dropout.h) on the fused path
// where the kernel takes x: the same distribution and scaling, from another generator.
inline torch::Tensor apply_dropout(torch::nn::Dropout& module, const torch::Tensor& x,
                                   KernelPath kernels) {
  if (kernels == KernelPath::kFused && dropout_supports(x))
    return qkv::dropout(x, module->options.p(), module->is_training());
  return module(x);
}

}  // namespace qkv
