// The torch side of the bias_act CUDA kernel (CUDA-LibTorch builds only), structured like the reference's
// BiasActCuda / BiasActCudaGrad pair: the forward's backward is a second Function (mode 1) whose own backward
// gives the exact second derivative (mode 2 for x and b, and mode 1 again for the incoming gradient). Third and
// higher derivatives are not provided (training needs two: R1 and path length).
#include "kernels/cuda_ops.h"

#ifdef FACETEX_HAVE_TORCH_CUDA

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "core/error.h"
#include "kernels/cuda_launch_support.h"

namespace facetex::kernels::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BiasActSpec {
  Activation act = Activation::kLinear;
  int dim = 1;
  double alpha = 0.0, gain = 1.0, clamp = -1.0;
};

cuda::BiasActFunc launcher_func(Activation act) {
  switch (act) {
    case Activation::kLinear: return cuda::BiasActFunc::kLinear;
    case Activation::kRelu: return cuda::BiasActFunc::kRelu;
    case Activation::kLrelu: return cuda::BiasActFunc::kLrelu;
    case Activation::kTanh: return cuda::BiasActFunc::kTanh;
    case Activation::kSigmoid: return cuda::BiasActFunc::kSigmoid;
    case Activation::kElu: return cuda::BiasActFunc::kElu;
    case Activation::kSelu: return cuda::BiasActFunc::kSelu;
    case Activation::kSoftplus: return cuda::BiasActFunc::kSoftplus;
    case Activation::kSwish: return cuda::BiasActFunc::kSwish;
  }
  throw RuntimeError("bias_act: unknown activation");
}

// Smooth activations have a non-zero second derivative; for the piecewise-linear ones the second-order term is 0.
bool has_second_derivative(Activation act) {
  return act != Activation::kLinear && act != Activation::kRelu && act != Activation::kLrelu;
}
// What the backward needs kept: the smooth activations need x (and b) for mode 2, and swish derives everything
// from them; the others derive act' from y. Linear keeps y only to zero the gradient where the output was
// clamped (the reference's CUDA op keeps nothing for linear, so there its gradient wrongly passes clamped
// elements; the reference implementation, which the parity file records, zeroes them).
bool keeps_x(const BiasActSpec& s) { return has_second_derivative(s.act); }
bool keeps_y(const BiasActSpec& s) {
  return s.act != Activation::kSwish && (s.act != Activation::kLinear || s.clamp >= 0.0);
}
bool is_identity_gradient(const BiasActSpec& s) {
  return s.act == Activation::kLinear && s.gain == 1.0 && s.clamp < 0.0;
}

void save_spec(AutogradContext* ctx, const BiasActSpec& s) {
  ctx->saved_data["act"] = static_cast<int64_t>(s.act);
  ctx->saved_data["dim"] = static_cast<int64_t>(s.dim);
  ctx->saved_data["alpha"] = s.alpha;
  ctx->saved_data["gain"] = s.gain;
  ctx->saved_data["clamp"] = s.clamp;
}

BiasActSpec load_spec(AutogradContext* ctx) {
  BiasActSpec s;
  s.act = static_cast<Activation>(ctx->saved_data["act"].toInt());
  s.dim = static_cast<int>(ctx->saved_data["dim"].toInt());
  s.alpha = ctx->saved_data["alpha"].toDouble();
  s.gain = ctx->saved_data["gain"].toDouble();
  s.clamp = ctx->saved_data["clamp"].toDouble();
  return s;
}

// LibTorch 2.x custom Functions reject undefined tensors as inputs, so "absent" (no bias, a reference the
// activation does not need) travels as an empty tensor, like the reference's _null_tensor.
at::Tensor absent_like(const at::Tensor& x) { return at::empty({0}, x.options()); }
bool present(const at::Tensor& t) { return t.defined() && t.numel() > 0; }

// The kernel walks its buffers linearly, so they must be dense and share one layout: NCHW-contiguous, or
// channels-last for the NHWC FP16 blocks (fp16_channels_last). x's layout decides; the others are brought to it.
at::MemoryFormat dense_format(const at::Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast)
             ? at::MemoryFormat::ChannelsLast
             : at::MemoryFormat::Contiguous;
}

// Dense tensors of one shape with the same element order (strides of size-1 dimensions do not matter).
bool same_layout(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) return false;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  }
  return true;
}

// The layout a gradient must take: that of the saved forward tensors (x or y, whichever the activation keeps).
at::MemoryFormat saved_format(const at::Tensor& x, const at::Tensor& y, const at::Tensor& fallback) {
  return dense_format(present(x) ? x : present(y) ? y : fallback);
}

// One kernel launch over dense tensors of x's shape and layout (b, xref, yref, dy may be absent).
at::Tensor launch(int mode, const at::Tensor& x, const at::Tensor& b, const at::Tensor& xref, const at::Tensor& yref,
                  const at::Tensor& dy, const BiasActSpec& s) {
  for (const at::Tensor* t : {&xref, &yref, &dy}) {
    FACETEX_CHECK_RUNTIME(!present(*t) || same_layout(*t, x), "bias_act: buffers of different layouts");
  }
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(dense_format(x)));  // x's strides
  cuda::BiasActLaunch p;
  p.dtype = launcher_dtype(x, "bias_act");
  p.x = x.data_ptr();
  p.b = present(b) ? b.data_ptr() : nullptr;
  p.xref = present(xref) ? xref.data_ptr() : nullptr;
  p.yref = present(yref) ? yref.data_ptr() : nullptr;
  p.dy = present(dy) ? dy.data_ptr() : nullptr;
  p.y = y.data_ptr();
  p.size = x.numel();
  p.b_size = present(b) ? b.numel() : 0;
  // Dense x: the element at offset i has index (i / stride(dim)) % size(dim) along dim, in either layout.
  p.b_step = present(b) ? x.stride(s.dim) : 1;
  p.mode = mode;
  p.func = launcher_func(s.act);
  p.alpha = s.alpha;
  p.gain = s.gain;
  p.clamp = s.clamp;
  const c10::cuda::CUDAGuard device_guard(x.device());
  check_launch(cuda::bias_act(p, current_stream(x)), "bias_act");
  return y;
}

at::Tensor sum_to_bias(const at::Tensor& grad, int dim) {
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < grad.dim(); ++i) {
    if (i != dim) dims.push_back(i);
  }
  // An empty dim list would sum everything, not nothing.
  return dims.empty() ? grad : grad.sum(dims);
}

// d(bias_act)/dx applied to an incoming gradient dy (mode 1), differentiable once more.
class BiasActGradFunction : public torch::autograd::Function<BiasActGradFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& dy, const at::Tensor& x, const at::Tensor& b,
                            const at::Tensor& y, const BiasActSpec& s) {
    const at::Tensor dy_c = dy.contiguous(saved_format(x, y, dy));
    ctx->save_for_backward({has_second_derivative(s.act) ? dy_c : absent_like(dy_c), x, b, y});
    save_spec(ctx, s);
    return launch(1, dy_c, b, x, y, absent_like(dy_c), s);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const BiasActSpec s = load_spec(ctx);
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &dy = saved[0], &x = saved[1], &b = saved[2], &y = saved[3];
    const at::Tensor d_dx = grads[0].contiguous(saved_format(x, y, dy));

    at::Tensor d_dy, d_x, d_b;
    // Mode 1 is linear in dy, so its derivative with respect to dy is mode 1 again.
    if (ctx->needs_input_grad(0)) d_dy = BiasActGradFunction::apply(d_dx, x, b, y, s);
    if (has_second_derivative(s.act) && (ctx->needs_input_grad(1) || ctx->needs_input_grad(2))) {
      d_x = launch(2, d_dx, b, x, y, dy, s);
      if (ctx->needs_input_grad(2)) d_b = sum_to_bias(d_x, s.dim);
    }
    // No d_y: y is a function of x, and mode 2 already differentiates through it.
    return {d_dy, d_x, d_b, at::Tensor(), at::Tensor()};
  }
};

class BiasActFunction : public torch::autograd::Function<BiasActFunction> {
 public:
  // x and b arrive dense (made so outside the Function, where the copy is differentiable).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& b, const BiasActSpec& s) {
    const at::Tensor absent = absent_like(x);
    at::Tensor y = launch(0, x, b, absent, absent, absent, s);
    ctx->save_for_backward({keeps_x(s) ? x : absent, keeps_x(s) ? b : absent, keeps_y(s) ? y : absent});
    save_spec(ctx, s);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const BiasActSpec s = load_spec(ctx);
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& dy = grads[0];

    at::Tensor dx, db;
    if (ctx->needs_input_grad(0) || ctx->needs_input_grad(1)) {
      dx = is_identity_gradient(s) ? dy : BiasActGradFunction::apply(dy, saved[0], saved[1], saved[2], s);
    }
    if (ctx->needs_input_grad(1)) db = sum_to_bias(dx, s.dim);
    return {ctx->needs_input_grad(0) ? dx : at::Tensor(), db, at::Tensor()};
  }
};

}  // namespace

at::Tensor bias_act_cuda(const at::Tensor& x, const at::Tensor& b, Activation act, int dim, double alpha, double gain,
                         double clamp) {
  BiasActSpec s;
  s.act = act;
  s.dim = dim;
  s.alpha = alpha;
  s.gain = gain;
  s.clamp = clamp;
  return BiasActFunction::apply(x.contiguous(dense_format(x)), b.defined() ? b.contiguous() : absent_like(x), s);
}

}  // namespace facetex::kernels::detail

#endif  // FACETEX_HAVE_TORCH_CUDA
