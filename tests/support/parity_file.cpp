#include "tests/support/parity_file.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/h5.h"

namespace facetex::test {
namespace {

template <typename T>
at::Tensor to_tensor(hid_t loc, const std::string& name, at::ScalarType dtype) {
  std::vector<hsize_t> dims;
  std::vector<T> values = h5::read_dataset<T>(loc, name, &dims);
  std::vector<int64_t> shape(dims.begin(), dims.end());
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
  std::copy(values.begin(), values.end(), t.data_ptr<T>());
  return t;
}

}  // namespace

std::string parity_file_path() {
  if (const char* env = std::getenv("FACETEX_PARITY_FILE"); env != nullptr && *env != '\0') return env;
  // ctest sets FACETEX_SOURCE_DIR (facetex_test in cmake/FacetexTargets.cmake).
  const char* source_env = std::getenv("FACETEX_SOURCE_DIR");
  const std::string source_dir = source_env != nullptr ? source_env : "";
  if (!source_dir.empty()) {
    const auto beside = std::filesystem::path(source_dir) / ".." / "shared" / "testdata" / "stylegan2" / "parity_v1.h5";
    if (std::filesystem::exists(beside)) return beside.lexically_normal().string();
  }
  return "/work/shared/testdata/stylegan2/parity_v1.h5";
}

at::Tensor read_tensor(hid_t loc, const std::string& name) {
  h5::Id dataset = h5::open_dataset(loc, name);
  h5::Id type(H5Dget_type(dataset));
  const H5T_class_t cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT && size == 4) return to_tensor<float>(loc, name, at::kFloat);
  if (cls == H5T_FLOAT && size == 8) return to_tensor<double>(loc, name, at::kDouble);
  if (cls == H5T_INTEGER && size == 4 && H5Tget_sign(type) == H5T_SGN_2) {
    return to_tensor<int32_t>(loc, name, at::kInt);
  }
  throw DataError(fmt::format("{}: dataset {} is neither float32, float64 nor int32 (HDF5 class {}, {} bytes)",
                              h5::file_name(loc), name, static_cast<int>(cls), size));
}


nlohmann::json read_json_attr(hid_t obj, const std::string& name) {
  const std::string text = h5::read_attr_string(obj, name);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: attribute '{}' is not JSON ({}): {}", h5::file_name(obj), name, e.what(), text));
  }
}

}  // namespace facetex::test
