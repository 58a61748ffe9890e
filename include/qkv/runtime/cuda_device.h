#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace qkv {

// What qkv reads of a CUDA device beyond LibTorch's device-agnostic API. Compiled from
// src/runtime/cuda_device.cpp when LibTorch was built with CUDA, else from
// cuda_device_none.cpp, whose answers say there is none.

// Whether this binary was linked against a CUDA build of LibTorch.
bool built_with_cuda();

// The current CUDA device's name ("NVIDIA H100 80GB HBM3"); "" without one.
std::string cuda_device_name();

// The caching allocator's peak of bytes allocated since the last reset; 0 without a device.
int64_t cuda_peak_allocated_bytes();
void reset_cuda_peak_memory();

// Runs `work` under LibTorch's Kineto profiler (CPU operators and CUDA kernels, those inside CUDA
// graphs included) and writes a Chrome trace (chrome://tracing, Perfetto) to `path`. Throws
// std::runtime_error without a CUDA LibTorch.
void profile_to_trace(const std::string& path, const std::function<void()>& work);

}  // namespace qkv
