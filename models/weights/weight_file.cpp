#include "models/weights/weight_file.h"

#include <ATen/ATen.h>

#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/h5.h"

namespace fs = std::filesystem;

namespace facetex::models {

const at::Tensor* NetworkWeights::find(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return &t;
  }
  return nullptr;
}

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

at::Tensor read_tensor(hid_t group, const std::string& name, const std::string& context) {
  h5::Id d = h5::open_dataset(group, name);
  h5::Id type(H5Dget_type(d));
  auto dims = h5::shape(d);
  std::vector<int64_t> sizes(dims.begin(), dims.end());
  const H5T_class_t cls = H5Tget_class(type);
  at::Tensor t;
  if (cls == H5T_FLOAT) {
    t = at::empty(sizes, at::kFloat);
    if (t.numel() > 0) {
      FACETEX_CHECK_DATA(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr<float>()) >= 0,
                         "{}: cannot read {}: {}", context, name, h5::last_error());
    }
  } else if (cls == H5T_INTEGER) {
    t = at::empty(sizes, at::kLong);
    if (t.numel() > 0) {
      FACETEX_CHECK_DATA(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr<int64_t>()) >= 0,
                         "{}: cannot read {}: {}", context, name, h5::last_error());
    }
  } else {
    throw DataError(fmt::format("{}: dataset {} is neither float nor integer", context, name));
  }
  return t;
}

}  // namespace

NetworkWeights read_network_group(hid_t group, const std::string& context) {
  NetworkWeights w;
  if (h5::has_attr(group, "class_name")) w.class_name = h5::read_attr_string(group, "class_name");
  if (h5::has_attr(group, "init_kwargs")) w.init_kwargs = h5::read_attr_string(group, "init_kwargs");
  H5G_info_t info;
  FACETEX_CHECK_DATA(H5Gget_info(group, &info) >= 0, "{}: cannot list group: {}", context, h5::last_error());
  // Creation order is not tracked by every writer, so names come back sorted; state_dict order is rebuilt by
  // network_state() on the module side where it matters.
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<size_t>(n), '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT);
    H5O_info_t oinfo;
#if H5_VERSION_GE(1, 12, 0)
    H5Oget_info_by_name3(group, name.c_str(), &oinfo, H5O_INFO_BASIC, H5P_DEFAULT);
#else
    H5Oget_info_by_name2(group, name.c_str(), &oinfo, H5O_INFO_BASIC, H5P_DEFAULT);
#endif
    if (oinfo.type != H5O_TYPE_DATASET) continue;
    w.tensors.emplace_back(name, read_tensor(group, name, context));
  }
  return w;
}

std::map<std::string, NetworkWeights> read_weight_file(const fs::path& path) {
  h5::Id f = h5::open_file(path.string());
  const std::string format = h5::has_attr(f, "format") ? h5::read_attr_string(f, "format") : "";
  FACETEX_CHECK_DATA(format == kWeightFormat || format == kCheckpointFormat,
                     "{}: not a facetex weight file (attribute format != '{}'; convert published weights with "
                     "`facetex convert`)",
                     path.string(), kWeightFormat);
  const int64_t version = h5::read_attr_int(f, "version");
  FACETEX_CHECK_DATA(version >= 1 && version <= kWeightVersion, "{}: weight file version {} is not supported",
                     path.string(), version);
  std::map<std::string, NetworkWeights> out;
  H5G_info_t info;
  H5Gget_info(f, &info);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char name[256] = {0};
    H5Lget_name_by_idx(f, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof(name), H5P_DEFAULT);
    h5::Id g = h5::open_group(f, name);
    if (!h5::has_attr(g, "class_name")) continue;  // e.g. a checkpoint's /train group
    out.emplace(name, read_network_group(g, fmt::format("{} /{}", path.string(), name)));
  }
  return out;
}

NetworkWeights read_network(const fs::path& path, const std::string& network) {
  auto all = read_weight_file(path);
  auto it = all.find(network);
  if (it == all.end()) {
    std::string have;
    for (const auto& [k, v] : all) have += (have.empty() ? "" : ", ") + k;
    throw DataError(fmt::format("{}: no network '{}' (the file has: {})", path.string(), network, have));
  }
  return std::move(it->second);
}

void write_network_group(hid_t parent, const std::string& name, const NetworkWeights& weights) {
  h5::Id g = h5::create_group(parent, name);
  h5::write_attr(g, "class_name", weights.class_name);
  h5::write_attr(g, "init_kwargs", weights.init_kwargs);
  for (const auto& [key, tensor] : weights.tensors) {
    std::vector<hsize_t> dims(tensor.sizes().begin(), tensor.sizes().end());
    if (at::isIntegralType(tensor.scalar_type(), /*includeBool=*/true)) {
      at::Tensor t = tensor.detach().to(at::kCPU, at::kLong).contiguous();
      h5::write_dataset(g, key, t.data_ptr<int64_t>(), dims);
    } else {
      at::Tensor t = tensor.detach().to(at::kCPU, at::kFloat).contiguous();
      h5::write_dataset(g, key, t.data_ptr<float>(), dims);
    }
  }
}

void write_weight_file(const fs::path& path, const std::map<std::string, NetworkWeights>& networks,
                       const std::string& source, const std::string& created_by) {
  AtomicFile file(path);
  {
    h5::Id f = h5::create_file(file.temp_path().string());
    h5::write_attr(f, "format", kWeightFormat);
    h5::write_attr(f, "version", kWeightVersion);
    h5::write_attr(f, "created_by", created_by);
    h5::write_attr(f, "source", source);
    for (const auto& [name, w] : networks) write_network_group(f, name, w);
  }
  file.commit();
}

NetworkWeights network_state(const torch::nn::Module& module, const std::string& class_name,
                             const std::string& init_kwargs) {
  NetworkWeights w;
  w.class_name = class_name;
  w.init_kwargs = init_kwargs;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) w.tensors.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) w.tensors.emplace_back(b.key(), b.value());
  return w;
}

void load_network(torch::nn::Module& module, const NetworkWeights& weights, const std::string& context) {
  std::set<std::string> expected;
  at::NoGradGuard no_grad;
  auto load = [&](const std::string& name, at::Tensor& target) {
    expected.insert(name);
    const at::Tensor* src = weights.find(name);
    FACETEX_CHECK_DATA(src != nullptr, "{}: {} is missing from the file (the network expects shape {})", context, name,
                       shape_str(target.sizes()));
    FACETEX_CHECK_DATA(src->sizes() == target.sizes(), "{}: {} has shape {} in the file, the network expects {}",
                       context, name, shape_str(src->sizes()), shape_str(target.sizes()));
    // A diverged run's NaN/Inf would otherwise come out as black images or NaN coefficients with exit 0.
    if (src->is_floating_point()) {
      const int64_t bad = src->numel() - src->isfinite().sum().item<int64_t>();
      FACETEX_CHECK_DATA(bad == 0, "{}: {} holds {} NaN/Inf values of {}; these weights are unusable (a diverged run?)",
                         context, name, bad, src->numel());
    }
    target.copy_(*src);
  };
  for (auto& p : module.named_parameters(true)) load(p.key(), p.value());
  for (auto& b : module.named_buffers(true)) load(b.key(), b.value());
  for (const auto& [name, t] : weights.tensors) {
    FACETEX_CHECK_DATA(expected.count(name) > 0, "{}: the file has {} {}, which the network does not have", context,
                       name, shape_str(t.sizes()));
  }
}

}  // namespace facetex::models
