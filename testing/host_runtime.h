// Host-side hooks for tests: capture what mm and ktl log (ktl::log) instead of printing it.
#pragma once

#include <string>
#include <vector>

namespace ferrite_host {

// While alive, ktl::log lines are appended to `lines` instead of going to stderr.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> lines;

  [[nodiscard]] bool contains(const std::string& needle) const {
    for (const auto& l : lines) {
      if (l.find(needle) != std::string::npos) return true;
    }
    return false;
  }

 private:
  LogCapture* previous_;
};

}  // namespace ferrite_host
