// The LPIPS term of texture recovery (spec §7.1 step 5): the squared distance between LPIPS features of the
// composite and of the target, with NVIDIA's vgg16.pt (TorchScript, forward(img [B,3,H,W] 0-255, resize_images,
// return_lpips) -> [B, F] features whose squared distance is LPIPS), called as the public projector calls it:
// resize_images = false, return_lpips = true.
//
// Two ways to differentiate it:
// - distance_with_gradient: VGG16 forward and backward `chunk` images at a time, asking autograd for the gradient at
//   the images only. Its activations (about 3.5 GB per 1024² image in float32) are held for one chunk, not the batch;
//   images' distances are independent, so the result is the one-pass result up to rounding (bit-identical when the
//   chunk holds the batch). The caller backpropagates the gradient through whatever made the images.
// - distance: in the caller's graph, as the public projector does — one backward through everything, which also
//   computes VGG16's weight gradients when the weights require grad (kept only for the public baseline).
#pragma once

#include <ATen/ATen.h>
#include <c10/core/Device.h>

#include <filesystem>
#include <memory>

namespace torch::jit {
struct Module;
}

namespace facetex::train {

class LpipsTerm {
 public:
  // Loads `file` onto `device` (DataError naming it when missing or not TorchScript). freeze_weights: the loaded
  // parameters require grad as saved (vgg16.pt's do); frozen, no backward computes their gradients.
  LpipsTerm(const std::filesystem::path& file, const c10::Device& device, int64_t chunk, bool freeze_weights);
  ~LpipsTerm();
  LpipsTerm(const LpipsTerm&) = delete;
  LpipsTerm& operator=(const LpipsTerm&) = delete;

  // Features [B, F] of images [B, 3, H, W] (0-255), `chunk` images per pass, no graph.
  at::Tensor target_features(const at::Tensor& images);
  // Per-image distance [B] to `target_features` (no graph), and in `images_grad` d(Σ distance)/d(images).
  at::Tensor distance_with_gradient(const at::Tensor& images, const at::Tensor& target_features,
                                    at::Tensor& images_grad);
  // Per-image distance [B] in the caller's graph (one pass over the batch).
  at::Tensor distance(const at::Tensor& images, const at::Tensor& target_features);

  int64_t chunk() const { return chunk_; }
  // Whether no parameter of the loaded module requires grad.
  bool weights_frozen() const;

 private:
  at::Tensor features(const at::Tensor& images);

  std::unique_ptr<torch::jit::Module> vgg_;
  int64_t chunk_;
};

}  // namespace facetex::train
