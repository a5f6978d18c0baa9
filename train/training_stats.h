// Training statistics as the reference's torch_utils/training_stats: every report() adds float64 moments
// [count, sum, sum of squares] under a name; a collect() turns them into {num, mean, std} per name (stats.jsonl)
// and resets them. The moments are plain numbers, so a multi-rank run sums them across ranks before use and every
// rank sees the same means (the ADA statistic relies on it).
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
  // every rank reports the same names.
  const std::map<std::string, Moments>& pending() const { return pending_; }
  std::map<std::string, Moments>& pending() { return pending_; }
  // The collected {name: moments} and a reset.
  std::map<std::string, Moments> collect();

  // Flattened [count, sum, sum_sq] per name in name order, and back (for checkpoints and cross-rank sums).
  std::vector<double> flatten() const;
  void restore(const std::vector<std::string>& names, const std::vector<double>& flat);
  std::vector<std::string> names() const;

 private:
  std::map<std::string, Moments> pending_;
};

// One stats.jsonl line: {"Loss/G/loss": {"num": n, "mean": m, "std": s}, ..., "timestamp": t}.
std::string stats_json_line(const std::map<std::string, Moments>& stats, double timestamp);

}  // namespace facetex::train
