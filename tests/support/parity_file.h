// Reading the StyleGAN2-ADA parity vectors (shared/testdata/stylegan2/parity_v1.h5; layout in the README beside
// it) into ATen tensors, for the parity tests of kernels/, models/ and train/.
#pragma once

#include <hdf5.h>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace facetex::test {

// $FACETEX_PARITY_FILE when set; else $FACETEX_SOURCE_DIR/../shared/testdata/stylegan2/parity_v1.h5 (the shared/
// folder beside the checkout, as CI lays it out; ctest sets FACETEX_SOURCE_DIR) when it exists; else
// /work/shared/testdata/stylegan2/parity_v1.h5.
std::string parity_file_path();

// A float32, float64 or int32 dataset (any rank; a 0-d dataset gives a 0-d tensor) as a CPU tensor of the same
// dtype and shape. `name` may be a path relative to `loc` ("outputs/y"). Other types throw DataError.
at::Tensor read_tensor(hid_t loc, const std::string& name);

// A string attribute holding JSON (`kwargs`, `resolved`, `init_kwargs`, ...), parsed; DataError when it is missing
// or not JSON.
nlohmann::json read_json_attr(hid_t obj, const std::string& name);

}  // namespace facetex::test
