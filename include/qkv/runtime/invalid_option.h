#pragma once

#include <stdexcept>
#include <string>

namespace qkv {

// An option of a library call (GenerationOptions, PerplexityOptions, BenchmarkOptions, ...) that
// is out of its range. option() is the field's name ("top_k"), requirement() what it must be and
// what it was ("must be >= 0 (0 = off), got -1"); what() joins them. The command line, whose
// flags carry these names in kebab case, names its flag instead.
class InvalidOption : public std::invalid_argument {
 public:
  InvalidOption(const std::string& option, const std::string& requirement)
      : std::invalid_argument(option + " " + requirement),
        option_(option),
        requirement_(requirement) {}
  const std::string& option() const { return option_; }
  const std::string& requirement() const { return requirement_; }

 private:
  std::string option_, requirement_;
};

}  // namespace qkv
