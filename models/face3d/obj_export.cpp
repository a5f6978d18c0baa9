#include "models/face3d/obj_export.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <iterator>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace facetex::models::face3d {
namespace {

// [3, H, W] uint8 or float in [0, 1] -> PNG bytes (OpenCV encodes BGR).
std::string encode_png(const at::Tensor& texture) {
  FACETEX_CHECK_RUNTIME(texture.dim() == 3 && texture.size(0) == 3 && texture.size(1) > 0 && texture.size(2) > 0,
                        "write_textured_obj: texture must be [3, H, W], got {}", texture.sizes());
  at::Tensor t = texture.detach().to(at::kCPU);
  if (t.scalar_type() != at::kByte) {
    FACETEX_CHECK_RUNTIME(at::isFloatingType(t.scalar_type()),
                          "write_textured_obj: texture must be uint8 or floating point in [0, 1], got {}",
                          c10::toString(t.scalar_type()));
    t = (t.to(at::kFloat).clamp(0, 1) * 255).round().to(at::kByte);
  }
  at::Tensor bgr = t.flip({0}).permute({1, 2, 0}).contiguous();  // RGB -> BGR, CHW -> HWC
  const cv::Mat image(static_cast<int>(bgr.size(0)), static_cast<int>(bgr.size(1)), CV_8UC3, bgr.data_ptr<uint8_t>());
  std::vector<uchar> png;
  FACETEX_CHECK_RUNTIME(cv::imencode(".png", image, png), "write_textured_obj: PNG encoding failed");
  return std::string(png.begin(), png.end());
}

}  // namespace

void write_textured_obj(const fs::path& dir, const std::string& stem, const at::Tensor& vertices, const at::Tensor& uv,
                        const at::Tensor& triangles, const at::Tensor& texture) {
  FACETEX_CHECK_RUNTIME(!stem.empty() && stem.find('/') == std::string::npos,
                        "write_textured_obj: stem must be a plain file name, got '{}'", stem);
  FACETEX_CHECK_RUNTIME(vertices.dim() == 2 && vertices.size(1) == 3, "write_textured_obj: vertices must be [V, 3]");
  FACETEX_CHECK_RUNTIME(uv.dim() == 2 && uv.size(1) == 2 && uv.size(0) == vertices.size(0),
                        "write_textured_obj: uv must be [V, 2] with V = {}, got {}", vertices.size(0), uv.sizes());
  FACETEX_CHECK_RUNTIME(triangles.dim() == 2 && triangles.size(1) == 3, "write_textured_obj: triangles must be [F, 3]");
  const at::Tensor v = vertices.detach().to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor t = uv.detach().to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor f = triangles.detach().to(at::kCPU, at::kLong).contiguous();
  const int64_t num_vertices = v.size(0);
  if (f.numel() > 0) {
    FACETEX_CHECK_RUNTIME(f.min().item<int64_t>() >= 0 && f.max().item<int64_t>() < num_vertices,
                          "write_textured_obj: triangle indices outside [0, {})", num_vertices);
  }
  const std::string png = encode_png(texture);

  // The mesh has one UV per vertex (no seams), so every face uses the same index for v and vt (1-based).
  fmt::memory_buffer obj;
  fmt::format_to(std::back_inserter(obj), "# facetex textured face mesh: {} vertices, {} triangles\nmtllib {}.mtl\n",
                 num_vertices, f.size(0), stem);
  auto va = v.accessor<float, 2>();
  auto ta = t.accessor<float, 2>();
  auto fa = f.accessor<int64_t, 2>();
  // "{}" prints the shortest decimal that reads back to the same float.
  for (int64_t i = 0; i < num_vertices; ++i) fmt::format_to(std::back_inserter(obj), "v {} {} {}\n", va[i][0], va[i][1], va[i][2]);
  for (int64_t i = 0; i < num_vertices; ++i) fmt::format_to(std::back_inserter(obj), "vt {} {}\n", ta[i][0], ta[i][1]);
  fmt::format_to(std::back_inserter(obj), "usemtl {}\n", stem);
  for (int64_t i = 0; i < f.size(0); ++i) {
    const int64_t a = fa[i][0] + 1, b = fa[i][1] + 1, c = fa[i][2] + 1;
    fmt::format_to(std::back_inserter(obj), "f {}/{} {}/{} {}/{}\n", a, a, b, b, c, c);
  }
  const std::string mtl = fmt::format("newmtl {}\nKd 1 1 1\nmap_Kd {}.png\n", stem, stem);

  fs::create_directories(dir);
  // The texture first, the OBJ last: a reader that finds the OBJ finds everything it references.
  write_file_atomic(dir / (stem + ".png"), png);
  write_file_atomic(dir / (stem + ".mtl"), mtl);
  write_file_atomic(dir / (stem + ".obj"), std::string_view(obj.data(), obj.size()));
}

}  // namespace facetex::models::face3d
