#pragma once

#include <cstdint>
#include <string>

namespace qkv {

// One status line rewritten in place on a terminal (a progress bar); silent when stderr is not a
// terminal, where the caller's periodic log lines are the record instead.
class ProgressLine {
 public:
  ProgressLine();
  explicit ProgressLine(bool enabled) : enabled_(enabled) {}
  ~ProgressLine() { clear(); }

  void update(const std::string& text);
  void clear();  // call before printing a log line so the two do not interleave
  bool enabled() const { return enabled_; }

  // "[#######.....] " of the given width for done/total.
  static std::string bar(double fraction, int width = 24);
  static std::string duration(double seconds);  // "1:02:03" or "2:03"

 private:
  bool enabled_;
  bool shown_ = false;
};

}  // namespace qkv
