#include "train/adam.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <vector>

#include "core/error.h"

namespace facetex::train {

AdamOptions AdamOptions::lazy(double lr, double beta1, double beta2, double eps, int reg_interval) {
  AdamOptions o{lr, beta1, beta2, eps};
  if (reg_interval > 0) {
    const double ratio = double(reg_interval) / (reg_interval + 1);
    o.lr = lr * ratio;
    o.beta1 = std::pow(beta1, ratio);
    o.beta2 = std::pow(beta2, ratio);
  }
  return o;
}

Adam::Adam(std::vector<std::pair<std::string, at::Tensor>> params, AdamOptions options)
    : params_(std::move(params)), o_(options) {
  for (const auto& [name, p] : params_) {
    state_.push_back({name, at::zeros_like(p, at::MemoryFormat::Preserve), at::zeros_like(p, at::MemoryFormat::Preserve), 0});
  }
}

void Adam::sanitize_gradients() {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> finite;
  int64_t numel = 0;
  for (auto& [name, p] : params_) {
    at::Tensor g = p.mutable_grad();
    if (!g.defined()) continue;
    finite.push_back(at::isfinite(g).sum());
    numel += g.numel();
    at::nan_to_num_(g, 0.0, 1e5, -1e5);  // leaves finite entries as they are, bit for bit
  }
  if (finite.empty()) return;
  at::Tensor replaced = numel - at::stack(finite).sum();
  nonfinite_ = nonfinite_.defined() ? nonfinite_ + replaced : replaced;
}

int64_t Adam::take_nonfinite_count() {
  if (!nonfinite_.defined()) return 0;
  const int64_t n = nonfinite_.item<int64_t>();
  nonfinite_ = at::Tensor();
  return n;
}

void Adam::step() {
  at::NoGradGuard no_grad;
  // Multi-tensor (foreach) ops: a few kernel launches for all parameters on a GPU instead of eight per parameter;
  // each op computes what its single-tensor form does (on the CPU it is that form, tensor by tensor). Parameters are
  // grouped by their step count, which decides the bias corrections (a parameter without a gradient skips a step).
  struct Group {
    std::vector<at::Tensor> params, grads, exp_avg, exp_avg_sq;
  };
  std::map<int64_t, Group> groups;
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = params_[i].second;
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;  // the reference skips parameters without a gradient (state untouched)
    State& s = state_[i];
    s.step += 1;
    Group& group = groups[s.step];
    group.params.push_back(p);
    group.grads.push_back(g);
    group.exp_avg.push_back(s.exp_avg);
    group.exp_avg_sq.push_back(s.exp_avg_sq);
  }
  for (auto& [step, g] : groups) {
    const double bias1 = 1 - std::pow(o_.beta1, double(step));
    const double bias2 = 1 - std::pow(o_.beta2, double(step));
    at::_foreach_mul_(g.exp_avg, o_.beta1);
    at::_foreach_add_(g.exp_avg, g.grads, 1 - o_.beta1);
    at::_foreach_mul_(g.exp_avg_sq, o_.beta2);
    at::_foreach_addcmul_(g.exp_avg_sq, g.grads, g.grads, 1 - o_.beta2);
    std::vector<at::Tensor> denom = at::_foreach_sqrt(g.exp_avg_sq);
    at::_foreach_div_(denom, std::sqrt(bias2));
    at::_foreach_add_(denom, o_.eps);
    at::_foreach_addcdiv_(g.params, g.exp_avg, denom, -o_.lr / bias1);
  }
}

void Adam::zero_grad() {
  for (auto& [name, p] : params_) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
}

}  // namespace facetex::train
