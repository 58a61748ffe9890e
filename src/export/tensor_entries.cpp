#include "tensor_entries.h"

#include <stdexcept>

namespace qkv {

std::string safetensors_dtype(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat32:
      return "F32";
    case torch::kFloat64:
      return "F64";
    case torch::kBFloat16:
      return "BF16";
    case torch::kFloat16:
      return "F16";
    case torch::kInt64:
      return "I64";
    case torch::kInt32:
      return "I32";
    case torch::kUInt8:
      return "U8";
    default:
      throw std::invalid_argument(std::string("no safetensors dtype for ") + c10::toString(type));
  }
}

void TensorEntries::add(const std::string& name, const torch::Tensor& tensor) {
  auto t = tensor.detach().to(torch::kCPU).contiguous();
  kept_.push_back(t);
  SafetensorsTensor e;
  e.name = name;
  e.dtype = safetensors_dtype(t.scalar_type());
  e.shape = t.sizes().vec();
  e.bytes = std::string_view(static_cast<const char*>(t.data_ptr()), t.nbytes());
  entries_.push_back(std::move(e));
}

}  // namespace qkv
