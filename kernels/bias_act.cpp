// bias_act: activation table, argument checks, the reference implementation from ATen ops (StyleGAN2-ADA's
// _bias_act_ref; autograd gives every derivative order) and the choice between the reference and the CUDA kernel.
#include "kernels/bias_act.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>

#include "core/error.h"
#include "kernels/cuda_ops.h"
#include "kernels/impl_choice.h"
#include "kernels/shape_text.h"

namespace facetex::kernels {
namespace {

constexpr double kSqrt2 = 1.4142135623730951;  // np.sqrt(2), the reference's default gain

struct ActivationInfo {
  Activation act;
  const char* name;
  double default_alpha;
  double default_gain;
};

// The reference's activation_funcs table (def_alpha, def_gain).
const ActivationInfo kActivations[] = {
    {Activation::kLinear, "linear", 0.0, 1.0},   {Activation::kRelu, "relu", 0.0, kSqrt2},
    {Activation::kLrelu, "lrelu", 0.2, kSqrt2}, {Activation::kTanh, "tanh", 0.0, 1.0},
    {Activation::kSigmoid, "sigmoid", 0.0, 1.0}, {Activation::kElu, "elu", 0.0, 1.0},
    {Activation::kSelu, "selu", 0.0, 1.0},       {Activation::kSoftplus, "softplus", 0.0, 1.0},
    {Activation::kSwish, "swish", 0.0, kSqrt2},
};

const ActivationInfo& info(Activation act) {
  for (const auto& entry : kActivations) {
    if (entry.act == act) return entry;
  }
  throw std::invalid_argument("bias_act: unknown Activation value " + std::to_string(static_cast<int>(act)));
}

at::Tensor apply_activation(const at::Tensor& x, Activation act, double alpha) {
  switch (act) {
    case Activation::kLinear: return x;
    case Activation::kRelu: return at::relu(x);
    case Activation::kLrelu: return at::leaky_relu(x, alpha);
    case Activation::kTanh: return at::tanh(x);
    case Activation::kSigmoid: return at::sigmoid(x);
    case Activation::kElu: return at::elu(x);
    case Activation::kSelu: return at::selu(x);
    // PyTorch's defaults (beta 1, threshold 20: x itself above 20), exactly what the reference evaluates.
    case Activation::kSoftplus: return at::softplus(x, 1.0, 20.0);
    case Activation::kSwish: return at::sigmoid(x) * x;
  }
  throw std::invalid_argument("bias_act: unknown Activation value " + std::to_string(static_cast<int>(act)));
}

at::Tensor bias_act_reference(const at::Tensor& input, const at::Tensor& b, Activation act, int dim, double alpha,
                              double gain, double clamp) {
  at::Tensor x = input;
  if (b.defined()) {
    std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
    shape[static_cast<size_t>(dim)] = -1;
    x = x + b.reshape(shape);
  }
  x = apply_activation(x, act, alpha);
  if (gain != 1.0) x = x * gain;
  if (clamp >= 0.0) x = x.clamp(-clamp, clamp);
  return x;
}

}  // namespace

Activation parse_activation(const std::string& name) {
  for (const auto& entry : kActivations) {
    if (name == entry.name) return entry.act;
  }
  throw std::invalid_argument("unknown activation '" + name +
                              "' (expected linear, relu, lrelu, tanh, sigmoid, elu, selu, softplus or swish)");
}

const char* activation_name(Activation act) { return info(act).name; }

double default_gain(Activation act) { return info(act).default_gain; }

at::Tensor bias_act(const at::Tensor& x, const at::Tensor& b, const BiasActArgs& args, Impl impl) {
  FACETEX_CHECK_RUNTIME(x.defined() && x.is_floating_point(), "bias_act: x must be a floating-point tensor, got {}",
                        x.defined() ? std::string(c10::toString(x.scalar_type())) : std::string("undefined"));
  if (b.defined()) {
    FACETEX_CHECK_RUNTIME(b.dim() == 1, "bias_act: b must be 1-D, got {}", detail::shape_text(b));
    FACETEX_CHECK_RUNTIME(args.dim >= 0 && args.dim < x.dim(), "bias_act: dim {} is out of range for x of shape {}",
                          args.dim, detail::shape_text(x));
    FACETEX_CHECK_RUNTIME(b.size(0) == x.size(args.dim), "bias_act: b has {} elements but x{} has {} along dim {}",
                          b.size(0), detail::shape_text(x), x.size(args.dim), args.dim);
    FACETEX_CHECK_RUNTIME(b.scalar_type() == x.scalar_type() && b.device() == x.device(),
                          "bias_act: b ({} on {}) must have the dtype and device of x ({} on {})",
                          c10::toString(b.scalar_type()), b.device().str(), c10::toString(x.scalar_type()),
                          x.device().str());
  }
  FACETEX_CHECK_RUNTIME(!args.clamp || *args.clamp >= 0.0, "bias_act: clamp must be >= 0, got {}",
                        args.clamp.value_or(0.0));
  const ActivationInfo& spec = info(args.act);
  const double alpha = args.alpha.value_or(spec.default_alpha);
  const double gain = args.gain.value_or(spec.default_gain);
  const double clamp = args.clamp.value_or(-1.0);  // < 0: no clamping, as in the reference

  // Nothing to do: return x itself, as the reference does (also keeps the CUDA path free of identity Functions).
  if (args.act == Activation::kLinear && gain == 1.0 && clamp < 0.0 && !b.defined()) return x;
  if (detail::use_cuda_kernel(impl, x, "bias_act")) {
#ifdef FACETEX_HAVE_TORCH_CUDA
    return detail::bias_act_cuda(x, b, args.act, args.dim, alpha, gain, clamp);
#endif
  }
  return bias_act_reference(x, b, args.act, args.dim, alpha, gain, clamp);
}

}  // namespace facetex::kernels
