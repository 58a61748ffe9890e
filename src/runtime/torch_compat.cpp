#include "qkv/runtime/torch_compat.h"

#include <stdexcept>

#include <torch/version.h>

// at::scaled_dot_product_attention with its `scale` argument: LibTorch 2.1 and later.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define QKV_HAVE_SDPA 1
#endif

namespace qkv {

bool sdpa_available() {
#ifdef QKV_HAVE_SDPA
  return true;
#else
  return false;
#endif
}

torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                           const torch::Tensor& v, const torch::Tensor& allowed,
                                           double dropout_p, bool causal, double scale) {
#ifdef QKV_HAVE_SDPA
  return at::scaled_dot_product_attention(
      q, k, v, allowed.defined() ? c10::optional<at::Tensor>(allowed) : c10::nullopt, dropout_p,
      causal, scale);
#else
  (void)q, (void)k, (void)v, (void)allowed, (void)dropout_p, (void)causal, (void)scale;
  throw std::logic_error("scaled_dot_product_attention needs LibTorch 2.1 or later");
#endif
}

}  // namespace qkv
