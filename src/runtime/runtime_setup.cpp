#include "qkv/runtime/runtime_setup.h"

#include <dlfcn.h>
#include <link.h>
#include <malloc.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <torch/cuda.h>
#include <torch/utils.h>
#include <torch/version.h>

namespace qkv {

namespace {

// The loaded shared object whose name mentions BLAS, resolved through Debian's alternatives
// symlinks so the log says which implementation is really in use. cuBLAS (loaded by a CUDA
// LibTorch) is the GPU's and does not count: the CPU's BLAS is the question.
std::string loaded_blas_path() {
  std::string found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        std::string name = info->dlpi_name ? info->dlpi_name : "";
        const auto file = name.substr(name.rfind('/') + 1);
        if (file.find("blas") != std::string::npos && file.find("cublas") == std::string::npos) {
          char resolved[PATH_MAX];
          if (realpath(name.c_str(), resolved)) name = resolved;
          *static_cast<std::string*>(out) = name;
          return 1;
        }
        return 0;
      },
      &found);
  return found;
}

bool cpu_has_flag(const std::string& flag) {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("flags", 0) == 0)
      return (line + " ").find(" " + flag + " ") != std::string::npos;
  return false;
}

}  // namespace

std::string better_openblas_coretype() {
  if (std::getenv("OPENBLAS_CORETYPE")) return "";
  using GetCorename = char* (*)();
  auto corename = reinterpret_cast<GetCorename>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (!corename || !corename()) return "";
  std::string core = corename();
  std::transform(core.begin(), core.end(), core.begin(), ::tolower);
  if (core != "prescott") return "";
  // Measured on a 2-core Xeon with AVX-512 BF16 that OpenBLAS 0.3.21 does not know: fp32 matmul
  // 65 GFLOP/s with Prescott, 269 with SkylakeX, 300 with Cooperlake kernels; the small config's
  // training step 110 ms against 46-48 ms.
  if (cpu_has_flag("avx512f")) return cpu_has_flag("avx512_bf16") ? "Cooperlake" : "SkylakeX";
  if (cpu_has_flag("avx2")) return "Haswell";
  return "";
}

int hardware_cores() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

RuntimeInfo configure_runtime(int threads, CoreOwner owner) {
  RuntimeInfo info;
  // glibc serves blocks above 128 KiB-32 MiB with fresh mmaps and returns them on free, so every
  // step's activations page-faulted in anew: the large Shakespeare config spent 2 of its 3.4
  // minutes of benchmark in the kernel. Keeping freed memory in the heap ends that.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  const int wanted = threads > 0 ? threads : hardware_cores();
  using SetThreads = void (*)(int);
  using GetThreads = int (*)();
  auto set_blas = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get_blas = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  auto blas_parallel = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
  if (set_blas && blas_parallel && blas_parallel() == 2) {
    // An OpenMP-built OpenBLAS runs in LibTorch's own OpenMP pool: one pool, so both get every
    // core and neither waits on the other's spinning threads.
    set_blas(wanted);
    info.threads = wanted;
  } else if (set_blas && owner == CoreOwner::kLibTorch) {
    set_blas(1);
    info.threads = wanted;
  } else if (set_blas) {
    // OpenBLAS keeps its own spinning thread pool. Beside LibTorch's OpenMP pool of the same
    // size the two fight for the cores: the small Shakespeare step took 175 ms with 2 + 2
    // threads, 78 ms with 2 OpenMP + 1 BLAS, 65 ms with 1 OpenMP + 2 BLAS (2-core machine).
    // The matrix products dominate, so the cores go to the BLAS.
    set_blas(wanted);
    info.threads = 1;
  } else {
    info.threads = wanted;
  }
  torch::set_num_threads(info.threads);
  if (get_blas) info.blas_threads = get_blas();
  info.blas = describe_blas();
  return info;
}

std::string describe_blas() {
  using GetConfig = char* (*)();
  std::string path = loaded_blas_path();
  if (auto config = reinterpret_cast<GetConfig>(dlsym(RTLD_DEFAULT, "openblas_get_config")))
    return std::string(config()) + " (" + path + ")";
  if (!path.empty())
    return path.find("/blas/") != std::string::npos
               ? "reference BLAS, slow: install libopenblas0-openmp (" + path + ")"
               : path;
  return "none loaded (LibTorch's built-in kernels or MKL)";
}

std::string libtorch_version() {
  return TORCH_VERSION;
}

std::string resolve_device(const std::string& requested) {
  if (requested == "cpu") return "cpu";
  if (requested == "cuda" || requested == "auto") {
    bool cuda = torch::cuda::is_available();
    if (requested == "cuda" && !cuda)
      throw std::invalid_argument("runtime.device is 'cuda' but no CUDA device is available");
    return cuda ? "cuda" : "cpu";
  }
  throw std::invalid_argument("runtime.device must be 'auto', 'cpu' or 'cuda', got '" + requested +
                              "'");
}

}  // namespace qkv
