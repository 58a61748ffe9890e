#pragma once

// Which of a kernel's two compiled copies of its loops (compile_twice.inc) runs: the AVX-512 +
// FMA one where the processor has both, the portable x86-64 one elsewhere.
namespace qkv {

inline bool cpu_has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return yes;
}

}  // namespace qkv
