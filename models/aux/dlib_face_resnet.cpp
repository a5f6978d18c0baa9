#include "models/aux/dlib_face_resnet.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace facetex::models::aux {
namespace {
std::string shape_text(const std::vector<int64_t>& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out;
}
}  // namespace

std::map<std::string, at::Tensor> load_tfjs_weights(const fs::path& manifest_json) {
  FACETEX_CHECK_DATA(fs::is_regular_file(manifest_json),
                     "{}: tfjs weights manifest not found (scripts/fetch_assets.sh installs "
                     "face-api/model/face_recognition_model-weights_manifest.json)",
                     manifest_json.string());
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(read_file(manifest_json));
  } catch (const std::exception& e) {
    throw DataError(fmt::format("{}: not a tfjs weights manifest: {}", manifest_json.string(), e.what()));
  }
  FACETEX_CHECK_DATA(manifest.is_array(), "{}: a tfjs weights manifest is a JSON array of groups",
                     manifest_json.string());
  std::map<std::string, at::Tensor> out;
  try {
    for (const auto& group : manifest) {
      // A group's weights run across the concatenation of its shards.
      std::string bytes;
      for (const auto& p : group.at("paths")) bytes += read_file(manifest_json.parent_path() / p.get<std::string>());
      size_t offset = 0;
      for (const auto& w : group.at("weights")) {
        const std::string name = w.at("name").get<std::string>();
        std::vector<int64_t> shape = w.at("shape").get<std::vector<int64_t>>();
        int64_t count = 1;
        for (int64_t s : shape) count *= s;
        FACETEX_CHECK_DATA(w.value("dtype", "float32") == "float32", "{}: {}: dtype {} is not supported",
                           manifest_json.string(), name, w.value("dtype", ""));
        at::Tensor t = at::empty(shape, at::kFloat);
        float* dst = t.data_ptr<float>();
        if (w.contains("quantization")) {
          const auto& q = w.at("quantization");
          const std::string qtype = q.at("dtype").get<std::string>();
          FACETEX_CHECK_DATA(qtype == "uint8", "{}: {}: quantization dtype {} is not supported",
                             manifest_json.string(), name, qtype);
          const float scale = q.at("scale").get<float>(), min = q.at("min").get<float>();
          FACETEX_CHECK_DATA(offset + count <= bytes.size(), "{}: shards end inside {}", manifest_json.string(),
                             name);
          const auto* src = reinterpret_cast<const uint8_t*>(bytes.data() + offset);
          for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<float>(src[i]) * scale + min;
          offset += count;
        } else {
          FACETEX_CHECK_DATA(offset + 4 * count <= bytes.size(), "{}: shards end inside {}", manifest_json.string(),
                             name);
          std::memcpy(dst, bytes.data() + offset, 4 * count);
          offset += 4 * count;
        }
        out[name] = t;
      }
      FACETEX_CHECK_DATA(offset == bytes.size(), "{}: shards hold {} bytes, the weights use {}",
                         manifest_json.string(), bytes.size(), offset);
    }
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: malformed tfjs weights manifest: {}", manifest_json.string(), e.what()));
  }
  return out;
}

namespace {

// The 29 convolutions of the net in face-api's naming, and whether each block downsamples.
struct BlockSpec {
  const char* name;
  bool down;
};
constexpr BlockSpec kBlocks[] = {
    {"conv32_1", false},   {"conv32_2", false},  {"conv32_3", false},  {"conv64_down", true},
    {"conv64_1", false},   {"conv64_2", false},  {"conv64_3", false},  {"conv128_down", true},
    {"conv128_1", false},  {"conv128_2", false}, {"conv256_down", true}, {"conv256_1", false},
    {"conv256_2", false},  {"conv256_down_out", true}};

}  // namespace

DlibFaceResNet::DlibFaceResNet(const fs::path& manifest_json, c10::Device device) : device_(device) {
  std::map<std::string, at::Tensor> w = load_tfjs_weights(manifest_json);
  auto take = [&](const std::string& name, std::vector<int64_t> shape) {
    auto it = w.find(name);
    FACETEX_CHECK_DATA(it != w.end(), "{}: weight {} missing", manifest_json.string(), name);
    FACETEX_CHECK_DATA(it->second.sizes().vec() == shape, "{}: weight {} has shape {}, expected {}",
                       manifest_json.string(), name, shape_text(it->second.sizes().vec()), shape_text(shape));
    at::Tensor t = it->second;
    w.erase(it);
    return t;
  };
  auto add_conv = [&](const std::string& prefix, int64_t k, int64_t in, int64_t out) {
    Conv c;
    c.weight = take(prefix + "/conv/filters", {k, k, in, out}).permute({3, 2, 0, 1}).contiguous().to(device_);
    c.bias = take(prefix + "/conv/bias", {out}).to(device_);
    c.gamma = take(prefix + "/scale/weights", {out}).view({1, out, 1, 1}).to(device_);
    c.beta = take(prefix + "/scale/biases", {out}).view({1, out, 1, 1}).to(device_);
    convs_[prefix] = c;
  };
  add_conv("conv32_down", 7, 3, 32);
  int64_t channels = 32;
  for (const BlockSpec& b : kBlocks) {
    const std::string name = b.name;
    const int64_t out = std::stoi(name.substr(4, name.find('_') - 4));
    add_conv(name + "/conv1", 3, channels, out);
    add_conv(name + "/conv2", 3, out, out);
    channels = out;
  }
  fc_ = take("fc", {256, 128}).to(device_);
  FACETEX_CHECK_DATA(w.empty(), "{}: {} unexpected weights (first: {})", manifest_json.string(), w.size(),
                     w.empty() ? "" : w.begin()->first);
}

at::Tensor DlibFaceResNet::conv(const at::Tensor& x, const Conv& c, int stride, bool relu) const {
  const int64_t k = c.weight.size(2);
  // dlib's con_: padding k/2 at stride 1, none at stride > 1.
  const int64_t pad = stride == 1 ? k / 2 : 0;
  at::Tensor y = at::conv2d(x, c.weight, c.bias, {stride, stride}, {pad, pad});
  y = at::addcmul(c.beta, y, c.gamma);
  return relu ? at::relu_(y) : y;
}

at::Tensor DlibFaceResNet::residual(const at::Tensor& x, const std::string& name) const {
  at::Tensor y = conv(x, convs_.at(name + "/conv1"), 1, true);
  y = conv(y, convs_.at(name + "/conv2"), 1, false);
  return at::relu_(y.add_(x));
}

at::Tensor DlibFaceResNet::residual_down(const at::Tensor& x, const std::string& name) const {
  at::Tensor y = conv(x, convs_.at(name + "/conv1"), 2, true);
  y = conv(y, convs_.at(name + "/conv2"), 1, false);
  at::Tensor pooled = at::avg_pool2d(x, {2, 2}, {2, 2});
  // dlib's add_prev: the sum has the larger of each dimension; the smaller operand is zero-extended.
  const int64_t c = std::max(y.size(1), pooled.size(1)), h = std::max(y.size(2), pooled.size(2)),
                w = std::max(y.size(3), pooled.size(3));
  auto extend = [&](const at::Tensor& t) {
    if (t.size(1) == c && t.size(2) == h && t.size(3) == w) return t;
    return at::constant_pad_nd(t, {0, w - t.size(3), 0, h - t.size(2), 0, c - t.size(1)}, 0.0);
  };
  return extend(y).add(extend(pooled)).relu_();
}

at::Tensor DlibFaceResNet::descriptor(const at::Tensor& chips) const {
  FACETEX_CHECK_USAGE(chips.dim() == 4 && chips.size(1) == 3 && chips.size(2) == kChipSize &&
                          chips.size(3) == kChipSize,
                      "face descriptors need [B, 3, {}, {}] chips, got [{}]", kChipSize, kChipSize,
                      shape_text(chips.sizes().vec()));
  torch::NoGradGuard no_grad;
  return forward(chips);
}

at::Tensor DlibFaceResNet::descriptor_differentiable(const at::Tensor& chips) const {
  FACETEX_CHECK_USAGE(chips.dim() == 4 && chips.size(1) == 3 && chips.size(2) == kChipSize &&
                          chips.size(3) == kChipSize && chips.is_floating_point(),
                      "face descriptors need [B, 3, {}, {}] floating-point chips, got [{}]", kChipSize, kChipSize,
                      shape_text(chips.sizes().vec()));
  return forward(chips);
}

at::Tensor DlibFaceResNet::forward(const at::Tensor& chips) const {
  if (chips.size(0) == 0) return at::empty({0, kDescriptorSize}, at::TensorOptions(device_).dtype(at::kFloat));
  const at::Tensor mean =
      at::tensor({122.782f, 117.001f, 104.298f}, at::kFloat).view({1, 3, 1, 1}).to(device_);
  at::Tensor x = chips.to(device_).to(at::kFloat).sub(mean).div_(256.0f);
  x = conv(x, convs_.at("conv32_down"), 2, true);
  x = at::max_pool2d(x, {3, 3}, {2, 2});
  for (const BlockSpec& b : kBlocks) x = b.down ? residual_down(x, b.name) : residual(x, b.name);
  return at::matmul(x.mean({2, 3}), fc_);
}

at::Tensor DlibFaceResNet::descriptor(const std::vector<std::vector<uint8_t>>& hwc_chips) const {
  return descriptor(chips_to_tensor(hwc_chips, kChipSize));
}

int face_chip_pyramid_levels(const at::Tensor& chip_to_image, int size) {
  const at::Tensor m = chip_to_image.detach().to(at::kCPU, at::kDouble).reshape({2, 3});
  auto a = m.accessor<double, 2>();
  // The rect's sides: chip pixels 0..size-1 span it (get_mapping_to_chip).
  const double w = std::hypot(a[0][0], a[1][0]) * (size - 1), h = std::hypot(a[0][1], a[1][1]) * (size - 1);
  double area = w * h;
  int levels = 0;
  while (area / 4 > double(size) * size && levels < 16) {
    area /= 4;
    ++levels;
  }
  return levels;
}

at::Tensor sample_face_chips(const at::Tensor& images, const at::Tensor& chip_to_image, int size) {
  FACETEX_CHECK_USAGE(images.dim() == 4 && images.is_floating_point(), "face chips need [B, C, H, W] float images");
  FACETEX_CHECK_USAGE(chip_to_image.dim() == 3 && chip_to_image.size(0) == images.size(0) &&
                          chip_to_image.size(1) == 2 && chip_to_image.size(2) == 3,
                      "face chips need one [2, 3] chip-to-image map per image");
  const auto opt = images.options();
  const at::Tensor blur1 = at::tensor({1.0, 4.0, 6.0, 4.0, 1.0}, at::kDouble).div(16).to(opt);
  const int64_t C = images.size(1);
  const at::Tensor kx = blur1.view({1, 1, 1, 5}).repeat({C, 1, 1, 1}), ky = blur1.view({1, 1, 5, 1}).repeat({C, 1, 1, 1});
  // Chip pixel coordinates (c, r, 1) [size*size, 3].
  const at::Tensor idx = at::arange(size, at::TensorOptions().dtype(at::kDouble));
  const auto rc = at::meshgrid({idx, idx}, "ij");
  const at::Tensor cr1 = at::stack({rc[1].reshape(-1), rc[0].reshape(-1), at::ones({int64_t(size) * size}, at::kDouble)}, 1);
  std::vector<at::Tensor> out;
  for (int64_t b = 0; b < images.size(0); ++b) {
    at::Tensor img = images.narrow(0, b, 1);
    at::Tensor m = chip_to_image[b].detach().to(at::kCPU, at::kDouble).clone();
    const int levels = face_chip_pyramid_levels(m, size);
    for (int l = 0; l < levels && img.size(2) > 8 && img.size(3) > 8; ++l) {
      // pyramid_down<2> on RGB: 5-tap sums over columns 2c..2c+4 and rows 2r..2r+4 (valid, stride 2), so level
      // pixel k sits at 2k + 2; the chip rect follows dlib's point_down, p/2 - (1.25, 0.75).
      img = at::conv2d(img, kx, at::Tensor(), std::vector<int64_t>{1, 2}, std::vector<int64_t>{0, 0},
                       std::vector<int64_t>{1, 1}, C);
      img = at::conv2d(img, ky, at::Tensor(), std::vector<int64_t>{2, 1}, std::vector<int64_t>{0, 0},
                       std::vector<int64_t>{1, 1}, C);
      m.mul_(0.5);
      m[0][2] -= 1.25;
      m[1][2] -= 0.75;
    }
    at::Tensor xy = at::matmul(cr1, m.t());  // [size*size, 2] at this level
    const double Hn = double(img.size(2)), Wn = double(img.size(3));
    xy = at::stack({xy.select(1, 0) * (2.0 / std::max(1.0, Wn - 1)) - 1, xy.select(1, 1) * (2.0 / std::max(1.0, Hn - 1)) - 1}, 1);
    const at::Tensor grid = xy.view({1, size, size, 2}).to(opt);
    out.push_back(at::grid_sampler(img, grid, /*bilinear*/ 0, /*zeros*/ 0, /*align_corners=*/true));
  }
  return at::cat(out);
}

at::Tensor chips_to_tensor(const std::vector<std::vector<uint8_t>>& hwc_chips, int size) {
  at::Tensor t = at::empty({static_cast<int64_t>(hwc_chips.size()), size, size, 3}, at::kByte);
  for (size_t i = 0; i < hwc_chips.size(); ++i) {
    FACETEX_CHECK_USAGE(hwc_chips[i].size() == static_cast<size_t>(size) * size * 3,
                        "face chip {} has {} bytes, expected {}x{}x3", i, hwc_chips[i].size(), size, size);
    std::memcpy(t[static_cast<int64_t>(i)].data_ptr<uint8_t>(), hwc_chips[i].data(), hwc_chips[i].size());
  }
  return t.permute({0, 3, 1, 2}).contiguous();
}

at::Tensor descriptor_distances(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kCPU, at::kDouble), y = b.to(at::kCPU, at::kDouble);
  return at::cdist(x, y);
}

std::vector<int> threshold_clusters(const at::Tensor& descriptors, double threshold) {
  const at::Tensor d = descriptor_distances(descriptors, descriptors);
  const int64_t n = d.size(0);
  auto acc = d.accessor<double, 2>();
  std::vector<int> parent(n);
  for (int64_t i = 0; i < n; ++i) parent[i] = static_cast<int>(i);
  std::function<int(int)> find = [&](int i) { return parent[i] == i ? i : parent[i] = find(parent[i]); };
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j)
      if (acc[i][j] < threshold) parent[find(static_cast<int>(i))] = find(static_cast<int>(j));
  std::vector<int> labels(n, -1);
  std::map<int, int> root_label;
  for (int64_t i = 0; i < n; ++i) {
    const int r = find(static_cast<int>(i));
    auto it = root_label.find(r);
    if (it == root_label.end()) it = root_label.emplace(r, static_cast<int>(root_label.size())).first;
    labels[i] = it->second;
  }
  return labels;
}

}  // namespace facetex::models::aux
