// NumPy's file formats, written: .npy (format 1.0, little-endian float32, C order) and .npz (a ZIP archive of .npy
// members, stored uncompressed, as numpy.savez writes it). So that what facetex hands to Python — per-vertex UVs,
// generate's ws, reconstruct's projected w — loads with np.load and nothing else. Torch-free: callers pass the
// array's float32 values and shape. (The strict .npy reader of the face model's UVs is models/face3d's.)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace facetex {

// The bytes of a .npy file holding `values` (row-major, product of `shape` elements; a 0-d shape is a scalar).
std::string npy_float32(const float* values, const std::vector<int64_t>& shape);

// The bytes of a .npz archive: one member "<key>.npy" per (key, .npy bytes), in order.
std::string npz_archive(const std::vector<std::pair<std::string, std::string>>& members);

}  // namespace facetex
