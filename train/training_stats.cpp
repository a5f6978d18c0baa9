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
  at::NoGradGuard no_grad;
  at::Tensor v = values.detach().flatten().to(at::kDouble);
  const at::Tensor finite = at::isfinite(v);
  v = v.masked_fill(finite.logical_not(), 0.0);  // dropped: they add nothing to any moment
  const at::Tensor m = at::stack({finite.sum(at::kDouble), v.sum(), v.square().sum()});
  pending_[name];  // the name is known from the first report on
  at::Tensor& acc = on_device_[name];
  acc = acc.defined() ? acc + m : m;
}

void TrainingStats::fold() const {
  if (on_device_.empty()) return;
  for (const auto& [name, acc] : on_device_) {
    const at::Tensor host = acc.cpu();
    const double* d = host.data_ptr<double>();
    pending_[name].add({d[0], d[1], d[2]});
  }
  on_device_.clear();
}

const std::map<std::string, Moments>& TrainingStats::pending() const {
  fold();
  return pending_;
}

std::map<std::string, Moments>& TrainingStats::pending() {
  fold();
  return pending_;
}

void TrainingStats::report(const std::string& name, double value) {
  if (!std::isfinite(value)) return;
  Moments& m = pending_[name];
  m.count += 1;
  m.sum += value;
  m.sum_sq += value * value;
}

std::map<std::string, Moments> TrainingStats::collect() {
  fold();
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
  fold();
  std::vector<double> out;
  for (const auto& [k, m] : pending_) out.insert(out.end(), {m.count, m.sum, m.sum_sq});
  return out;
}

void TrainingStats::restore(const std::vector<std::string>& names, const std::vector<double>& flat) {
  FACETEX_CHECK_DATA(flat.size() == 3 * names.size(), "training stats: {} values for {} names", flat.size(),
                     names.size());
  pending_.clear();
  on_device_.clear();
  for (size_t i = 0; i < names.size(); ++i) pending_[names[i]] = {flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]};
}

std::string stats_json_line(const std::map<std::string, Moments>& stats, double timestamp) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, m] : stats) j[name] = {{"num", m.count}, {"mean", m.mean()}, {"std", m.std()}};
  j["timestamp"] = timestamp;
  return j.dump();
}

}  // namespace facetex::train
