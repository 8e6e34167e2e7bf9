// CpuTimeRecorder: a console reporter that also remembers each benchmark's CPU time, so a
// benchmark's main() can print ratios between rows after the run. CPU time, not wall time: the
// ratios should not depend on what else the machine is running. A benchmark that sets the
// counter "pages" is recorded per page (per leaf for huge pages), every other one per iteration.
#pragma once

#include <benchmark/benchmark.h>

#include <map>
#include <string>
#include <vector>

namespace ferrite::bench {

class CpuTimeRecorder : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      auto pages = r.counters.find("pages");
      double per = pages == r.counters.end() ? 1.0 : static_cast<double>(pages->second);
      ns_[r.benchmark_name()] = r.GetAdjustedCPUTime() / per;  // the default time unit is ns
    }
    ConsoleReporter::ReportRuns(runs);
  }

  // The recorded time of `name` in ns, or -1 if it did not run (filtered out).
  [[nodiscard]] double ns(const std::string& name) const {
    auto it = ns_.find(name);
    return it == ns_.end() ? -1.0 : it->second;
  }

 private:
  std::map<std::string, double> ns_;
};

}  // namespace ferrite::bench
