#pragma once

// Which of a kernel's two compiled copies runs: the AVX-512 + FMA one where the processor has
// both, the portable x86-64 one elsewhere. Each kernel's loops live in a .inc file that its .cpp
// includes twice, once under `#pragma GCC target("avx2,fma,avx512f")`, so that nothing from
// LibTorch is compiled for the wider target.
namespace qkv {

inline bool cpu_has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return yes;
}

}  // namespace qkv
