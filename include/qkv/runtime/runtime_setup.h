#pragma once

#include <string>

namespace qkv {

// What the process computes with, logged at start so a slow run can be explained.
struct RuntimeInfo {
  int threads = 1;       // LibTorch intra-op threads
  int blas_threads = 0;  // OpenBLAS threads, 0 when the BLAS does not say
  std::string blas;      // which BLAS library is loaded, e.g. "OpenBLAS 0.3.21 ... (path)"
};

// Which pool gets the cores when OpenBLAS is the BLAS (two spinning pools fight for them).
enum class CoreOwner {
  kBlas,      // large matrix products: training, evaluation, prompts
  kLibTorch,  // many small products of one token each: decoding with packed weights
};

// Gives `threads` cores (0 = every core) to the computation and reports what is in use: to
// OpenBLAS when it is the BLAS and `owner` is kBlas (LibTorch's own pool then gets one thread,
// see the .cpp for the measurements), else to LibTorch's intra-op pool with one BLAS thread.
// Call before any work.
RuntimeInfo configure_runtime(int threads, CoreOwner owner = CoreOwner::kBlas);

// The OpenBLAS kernel set (an OPENBLAS_CORETYPE value) this CPU should use, when OpenBLAS has
// fallen back to its generic Prescott kernels on a CPU newer than it knows; "" otherwise (not
// OpenBLAS, a good choice already, or OPENBLAS_CORETYPE set by the user). OpenBLAS picks its
// kernels when it is loaded, so the value only takes effect in a process started with it set.
std::string better_openblas_coretype();

// The CPU's BLAS as loaded in this process: OpenBLAS's own description and its file, else the
// library's path, else "none loaded ...".
std::string describe_blas();

// The LibTorch this program was built with, e.g. "2.11.0".
std::string libtorch_version();

// Resolves "auto" | "cpu" | "cuda" to a device name, or throws naming the value.
std::string resolve_device(const std::string& requested);

int hardware_cores();

}  // namespace qkv
