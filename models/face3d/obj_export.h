// Wavefront OBJ + MTL + PNG export of a posed, textured mesh (what reconstruction and generation jobs write).
// All three files are written atomically; the OBJ references the MTL, the MTL the PNG (map_Kd), by file name.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>

namespace facetex::models::face3d {

// vertices: [V, 3]; uv: [V, 2] (v up); triangles: [F, 3] 0-based; texture: [3, R, R] uint8, or float in [0, 1].
// Writes <stem>.obj, <stem>.mtl and <stem>.png into `dir`.
void write_textured_obj(const std::filesystem::path& dir, const std::string& stem, const at::Tensor& vertices,
                        const at::Tensor& uv, const at::Tensor& triangles, const at::Tensor& texture);

}  // namespace facetex::models::face3d
