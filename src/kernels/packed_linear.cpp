#include "qkv/kernels/packed_linear.h"

#include "qkv/kernels/replace_module.h"

namespace qkv {

PackedLinearImpl::PackedLinearImpl(const LinearImpl& reference, WeightFormat format)
    : LinearImpl(reference),
      packed_(std::make_shared<const PackedWeight>(reference.weight, format)) {}

torch::Tensor PackedLinearImpl::forward(const torch::Tensor& x) {
  if (!torch::GradMode::is_enabled() && x.device().is_cpu() && x.scalar_type() == torch::kFloat32)
    return packed_->linear(x, bias);
  return LinearImpl::forward(x);
}

namespace {

// `layer` in `format`, installed in `parent` under `name`; adds the bytes it takes.
void pack(torch::nn::Module& parent, const std::string& name, Linear& layer, WeightFormat format,
          int64_t& bytes) {
  std::shared_ptr<LinearImpl> packed;
  if (format == WeightFormat::kFloat32) {
    packed = std::make_shared<LinearImpl>(*layer);
  } else {
    auto p = std::make_shared<PackedLinearImpl>(*layer, format);
    bytes += p->packed().bytes();
    packed = p;
  }
  replace_module(parent, name, layer, packed);
}

}  // namespace

int64_t pack_for_inference(TransformerLM& model, WeightFormat format) {
  int64_t bytes = 0;
  for (auto& module : *model->blocks) {
    auto& block = *module->as<TransformerBlockImpl>();
    auto& attn = *block.attn;
    pack(attn, "w_q", attn.w_q, format, bytes);
    pack(attn, "w_k", attn.w_k, format, bytes);
    pack(attn, "w_v", attn.w_v, format, bytes);
    pack(attn, "w_o", attn.w_o, format, bytes);
    auto& ffn = *block.ffn;
    pack(ffn, "fc_in", ffn.fc_in, format, bytes);
    pack(ffn, "fc_out", ffn.fc_out, format, bytes);
  }
  return bytes;
}

}  // namespace qkv
