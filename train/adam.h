// Adam exactly as torch.optim.Adam (single-tensor path, no weight decay, no amsgrad), with its state held in plain
// tensors so checkpoints can save and restore it bit for bit. StyleGAN2-ADA's lazy regularisation scales lr and
// betas per module: lr * ratio, beta ** ratio with ratio = interval / (interval + 1) (paper-system-spec.md §4.4).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace facetex::train {

struct AdamOptions {
  double lr = 0.002;
  double beta1 = 0.0, beta2 = 0.99;
  double eps = 1e-8;
  // Lazy regularisation: every `reg_interval` steps a regulariser runs; 0 = none.
  static AdamOptions lazy(double lr, double beta1, double beta2, double eps, int reg_interval);
};

class Adam {
 public:
  Adam(std::vector<std::pair<std::string, at::Tensor>> params, AdamOptions options);

  // Replaces every non-finite gradient entry (NaN -> 0, +inf -> 1e5, -inf -> -1e5, as the reference's
  // nan_to_num). No host sync: how many entries were replaced adds up on the gradients' device until
  // take_nonfinite_count() reads it (one sync) — a sync per parameter would stall a GPU every phase.
  void sanitize_gradients();
  // Entries replaced since the last call.
  int64_t take_nonfinite_count();
  void step();
  void zero_grad();  // set_to_none, as the reference

  const AdamOptions& options() const { return o_; }
  struct State {
    std::string name;
    at::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  std::vector<State>& state() { return state_; }
  const std::vector<std::pair<std::string, at::Tensor>>& params() const { return params_; }

 private:
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<State> state_;
  AdamOptions o_;
  at::Tensor nonfinite_;  // int64 count on the gradients' device (undefined: none counted yet)
};

}  // namespace facetex::train
