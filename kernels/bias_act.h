// bias_act: y = clamp(act(x + b) * gain, -clamp, clamp), b broadcast along `dim`, exactly as StyleGAN2-ADA's
// torch_utils/ops/bias_act.py (parity README, bias_act section). Default gains: sqrt(2) for relu, lrelu and swish,
// 1 otherwise; lrelu's default alpha is 0.2. The clamp's gradient passes where -clamp <= y <= clamp.
// Differentiable twice (R1 and path-length regularisation need it).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>

#include "kernels/dispatch.h"

namespace facetex::kernels {

enum class Activation { kLinear, kRelu, kLrelu, kTanh, kSigmoid, kElu, kSelu, kSoftplus, kSwish };
Activation parse_activation(const std::string& name);  // "linear", "lrelu", ... (std::invalid_argument otherwise)
const char* activation_name(Activation act);
double default_gain(Activation act);

struct BiasActArgs {
  Activation act = Activation::kLinear;
  int dim = 1;
  std::optional<double> alpha;  // default: 0.2 for lrelu (ignored by the others)
  std::optional<double> gain;   // default: default_gain(act)
  std::optional<double> clamp;  // none: no clamping
};

// `b` may be undefined (no bias). x: any shape with x.size(dim) == b.numel().
at::Tensor bias_act(const at::Tensor& x, const at::Tensor& b, const BiasActArgs& args, Impl impl = Impl::kAuto);

}  // namespace facetex::kernels
