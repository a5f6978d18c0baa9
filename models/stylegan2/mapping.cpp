#include "models/stylegan2/mapping.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace facetex::models::stylegan2 {

MappingNetwork::MappingNetwork(const MappingConfig& config) : c_(config) {
  FACETEX_CHECK_USAGE(c_.num_layers >= 1 && c_.z_dim >= 1 && c_.w_dim >= 1,
                      "mapping: num_layers, z_dim and w_dim must be >= 1, got {}, {} and {}", c_.num_layers, c_.z_dim,
                      c_.w_dim);
  const int features = c_.layer_features.value_or(c_.w_dim);
  const auto act = kernels::parse_activation(c_.activation);
  for (int i = 0; i < c_.num_layers; ++i) {
    const int in = i == 0 ? c_.z_dim : features;
    const int out = i == c_.num_layers - 1 ? c_.w_dim : features;
    fc_.push_back(register_module(fmt::format("fc{}", i),
                                  std::make_shared<FullyConnectedLayer>(in, out, true, act, c_.lr_multiplier)));
  }
  if (c_.num_ws > 0 && c_.w_avg_beta) w_avg = register_buffer("w_avg", at::zeros({c_.w_dim}));
}

at::Tensor MappingNetwork::forward(const at::Tensor& z, const Truncation& truncation, bool skip_w_avg_update) {
  FACETEX_CHECK_RUNTIME(z.dim() == 2 && z.size(1) == c_.z_dim, "mapping: z must be [N, {}], got {}", c_.z_dim,
                        z.sizes().vec());
  // The reference computes in float32; a module converted to float64 (for the float64 parity check) uses float64.
  at::Tensor x = normalize_2nd_moment(z.to(fc_.front()->weight.scalar_type()));
  for (auto& fc : fc_) x = fc->forward(x);
  if (c_.w_avg_beta && is_training() && !skip_w_avg_update && w_avg.defined()) {
    at::NoGradGuard no_grad;
    w_avg.copy_(x.detach().mean(0).lerp(w_avg, *c_.w_avg_beta));
  }
  if (c_.num_ws > 0) x = x.unsqueeze(1).repeat({1, c_.num_ws, 1});
  if (truncation.psi != 1.0) {
    FACETEX_CHECK_RUNTIME(w_avg.defined(), "mapping: truncation needs w_avg tracking (w_avg_beta)");
    if (c_.num_ws == 0 || !truncation.cutoff) {
      x = w_avg.lerp(x, truncation.psi);
    } else {
      const int64_t cut = std::min<int64_t>(*truncation.cutoff, c_.num_ws);
      x = at::cat({w_avg.lerp(x.narrow(1, 0, cut), truncation.psi), x.narrow(1, cut, c_.num_ws - cut)}, 1);
    }
  }
  return x;
}

at::Tensor mix_styles(MappingNetwork& mapping, const at::Tensor& z, const at::Tensor& ws, double prob) {
  if (prob <= 0) return ws;
  const int64_t num_ws = ws.size(1);
  at::Tensor cutoff = at::empty({}, ws.options().dtype(at::kLong)).random_(1, num_ws);
  cutoff = at::where(at::rand({}, ws.options()) < prob, cutoff, at::full_like(cutoff, num_ws));
  const int64_t c = cutoff.item<int64_t>();
  at::Tensor other = mapping.forward(at::randn_like(z), {}, /*skip_w_avg_update=*/true);
  if (c >= num_ws) return ws;
  return at::cat({ws.narrow(1, 0, c), other.narrow(1, c, num_ws - c)}, 1);
}

}  // namespace facetex::models::stylegan2
