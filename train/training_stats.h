// Training statistics as the reference's torch_utils/training_stats: every report() adds float64 moments
// [count, sum, sum of squares] under a name; a collect() turns them into {num, mean, std} per name (stats.jsonl)
// and resets them. The moments are plain numbers, so a multi-rank run sums them across ranks before use and every
// rank sees the same means (the ADA statistic relies on it).
//
// A tensor report stays on the tensor's device (a float64 [count, sum, sum_sq] per name, added up there) until
// something reads the moments: a report costs no host sync, so a GPU step is not stalled by its statistics (the
// reference accumulates on the device too).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace facetex::train {

struct Moments {
  double count = 0, sum = 0, sum_sq = 0;
  double mean() const { return count > 0 ? sum / count : 0.0; }
  double std() const;
  void add(const Moments& o) { count += o.count, sum += o.sum, sum_sq += o.sum_sq; }
};

class TrainingStats {
 public:
  // Every element of `values` is one observation (non-finite values are dropped, as the reference does).
  void report(const std::string& name, const at::Tensor& values);
  void report(const std::string& name, double value);

  // All names in order with their moments since the last collect(); the order is the same on every rank as long as
  // every rank reports the same names. Reading brings the device-side moments to the host (one sync per device).
  const std::map<std::string, Moments>& pending() const;
  std::map<std::string, Moments>& pending();
  // The collected {name: moments} and a reset.
  std::map<std::string, Moments> collect();

  // Flattened [count, sum, sum_sq] per name in name order, and back (for checkpoints and cross-rank sums).
  std::vector<double> flatten() const;
  void restore(const std::vector<std::string>& names, const std::vector<double>& flat);
  std::vector<std::string> names() const;

 private:
  void fold() const;  // adds the device-side moments into pending_
  mutable std::map<std::string, Moments> pending_;
  mutable std::map<std::string, at::Tensor> on_device_;  // name -> float64 [count, sum, sum_sq]
};

// One stats.jsonl line: {"Loss/G/loss": {"num": n, "mean": m, "std": s}, ..., "timestamp": t}.
std::string stats_json_line(const std::map<std::string, Moments>& stats, double timestamp);

}  // namespace facetex::train
