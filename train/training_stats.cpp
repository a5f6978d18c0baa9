#include "train/training_stats.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "core/error.h"

namespace facetex::train {

double Moments::std() const {
  if (count <= 0) return 0.0;
  const double m = mean();
  return std::sqrt(std::max(sum_sq / count - m * m, 0.0));
}

void TrainingStats::report(const std::string& name, const at::Tensor& values) {
  at::Tensor v = values.detach().flatten().to(at::kDouble).cpu();
  v = v.masked_select(at::isfinite(v));
  Moments& m = pending_[name];
  m.count += static_cast<double>(v.numel());
  m.sum += v.sum().item<double>();
  m.sum_sq += v.square().sum().item<double>();
}

void TrainingStats::report(const std::string& name, double value) {
  if (!std::isfinite(value)) return;
  Moments& m = pending_[name];
  m.count += 1;
  m.sum += value;
  m.sum_sq += value * value;
}

std::map<std::string, Moments> TrainingStats::collect() {
  std::map<std::string, Moments> out;
  out.swap(pending_);
  return out;
}

std::vector<std::string> TrainingStats::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : pending_) out.push_back(k);
  return out;
}

std::vector<double> TrainingStats::flatten() const {
  std::vector<double> out;
  for (const auto& [k, m] : pending_) out.insert(out.end(), {m.count, m.sum, m.sum_sq});
  return out;
}

void TrainingStats::restore(const std::vector<std::string>& names, const std::vector<double>& flat) {
  FACETEX_CHECK_DATA(flat.size() == 3 * names.size(), "training stats: {} values for {} names", flat.size(),
                     names.size());
  pending_.clear();
  for (size_t i = 0; i < names.size(); ++i) pending_[names[i]] = {flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]};
}

std::string stats_json_line(const std::map<std::string, Moments>& stats, double timestamp) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, m] : stats) j[name] = {{"num", m.count}, {"mean", m.mean()}, {"std", m.std()}};
  j["timestamp"] = timestamp;
  return j.dump();
}

}  // namespace facetex::train
