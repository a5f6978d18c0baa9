// Gradients for the kernel tests: torch::autograd::grad with unused inputs given as zeros (the parity files store
// zeros where an output does not depend on an input).
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <vector>

namespace facetex::test {

// A scalar that does not depend on anything differentiable (e.g. the gradient of a linear function) has zero
// gradients.
inline std::vector<at::Tensor> gradients(const at::Tensor& scalar, const std::vector<at::Tensor>& inputs,
                                         bool create_graph) {
  if (!scalar.requires_grad()) {
    std::vector<at::Tensor> zeros;
    for (const at::Tensor& input : inputs) zeros.push_back(at::zeros_like(input));
    return zeros;
  }
  std::vector<at::Tensor> grads =
      torch::autograd::grad({scalar}, inputs, /*grad_outputs=*/{}, /*retain_graph=*/true, create_graph,
                            /*allow_unused=*/true);
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) grads[i] = at::zeros_like(inputs[i]);
  }
  return grads;
}

}  // namespace facetex::test
