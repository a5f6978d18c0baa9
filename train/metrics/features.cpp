#include "train/metrics/features.h"

#include <ATen/ATen.h>
#include <torch/script.h>

#include <algorithm>

#include "cluster/communicator.h"
#include "core/atomic_file.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/progress.h"
#include "data/dataset.h"
#include "data/image_codec.h"
#include "models/aux/dlib_face_resnet.h"

namespace fs = std::filesystem;

namespace facetex::train::metrics {
namespace {

class InceptionExtractor final : public FeatureExtractor {
 public:
  InceptionExtractor(const fs::path& file, const c10::Device& device) : device_(device), stamp_(file_stamp(file)) {
    FACETEX_CHECK_DATA(fs::is_regular_file(file), "{}: Inception TorchScript file not found", file.string());
    try {
      module_ = torch::jit::load(file.string(), device);
    } catch (const c10::Error& e) {
      std::string why = e.what_without_backtrace();
      if (const auto nl = why.find('\n'); nl != std::string::npos) why.resize(nl);
      throw DataError(fmt::format("{}: not a TorchScript module: {}", file.string(), why));
    } catch (const std::exception& e) {
      throw DataError(fmt::format("{}: not a TorchScript module: {}", file.string(), e.what()));
    }
    module_.eval();
  }
  std::string name() const override { return "inception"; }
  std::string identity() const override { return "inception " + stamp_; }
  int64_t dim() const override { return 2048; }
  at::Tensor features(const at::Tensor& images) override {
    torch::NoGradGuard no_grad;
    std::vector<c10::IValue> args{images.to(device_)};
    const c10::IValue out = module_.get_method("forward")(args, {{"return_features", true}});
    at::Tensor f = out.toTensor().to(at::kCPU, at::kDouble);
    FACETEX_CHECK_RUNTIME(f.dim() == 2 && f.size(1) == dim(),
                          "the Inception file returned {}-dimensional output (last size {}), expected [B, {}]",
                          f.dim(), f.dim() > 0 ? f.size(-1) : 0, dim());
    return f;
  }

 private:
  c10::Device device_;
  std::string stamp_;
  torch::jit::script::Module module_;
};

class DlibExtractor final : public FeatureExtractor {
 public:
  DlibExtractor(const fs::path& manifest, const c10::Device& device)
      : net_(manifest, device), stamp_(file_stamp(manifest)) {}
  std::string name() const override { return "dlib"; }
  // The 150x150 antialiased resize is part of what the features are.
  std::string identity() const override { return "dlib resnet 150 aa " + stamp_; }
  int64_t dim() const override { return models::aux::DlibFaceResNet::kDescriptorSize; }
  at::Tensor features(const at::Tensor& images) override {
    torch::NoGradGuard no_grad;
    const int s = models::aux::DlibFaceResNet::kChipSize;
    at::Tensor x = images.to(net_.device()).to(at::kFloat);
    if (x.size(2) != s || x.size(3) != s) {
      x = at::_upsample_bilinear2d_aa(x, {s, s}, /*align_corners=*/false).clamp(0, 255);
    }
    return net_.descriptor(x).to(at::kCPU, at::kDouble);
  }

 private:
  models::aux::DlibFaceResNet net_;
  std::string stamp_;
};

bool is_image_file(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e == ".png" || e == ".jpg" || e == ".jpeg";
}

}  // namespace

std::unique_ptr<FeatureExtractor> make_inception_extractor(const fs::path& torchscript, const c10::Device& device) {
  return std::make_unique<InceptionExtractor>(torchscript, device);
}
std::unique_ptr<FeatureExtractor> make_dlib_extractor(const fs::path& manifest, const c10::Device& device) {
  return std::make_unique<DlibExtractor>(manifest, device);
}

struct ImageSource::Impl {
  fs::path root;
  std::vector<fs::path> files;
  std::shared_ptr<const data::Dataset> dataset;
};

ImageSource::ImageSource(const fs::path& path) : impl_(std::make_unique<Impl>()) {
  impl_->root = path;
  FACETEX_CHECK_DATA(fs::exists(path), "{}: no such folder", path.string());
  if (fs::is_regular_file(path / "dataset.json")) {
    impl_->dataset = data::Dataset::open(path);
    return;
  }
  FACETEX_CHECK_DATA(fs::is_directory(path), "{}: not a folder of images or a packed dataset", path.string());
  for (const auto& e : fs::recursive_directory_iterator(path))
    if (e.is_regular_file() && is_image_file(e.path())) impl_->files.push_back(e.path());
  std::sort(impl_->files.begin(), impl_->files.end());
}
ImageSource::~ImageSource() = default;

int64_t ImageSource::size() const {
  return impl_->dataset ? impl_->dataset->size() : static_cast<int64_t>(impl_->files.size());
}

std::string ImageSource::describe(int64_t index) const {
  if (impl_->dataset) return fmt::format("{} row {}", impl_->dataset->dir().string(), index);
  return impl_->files.at(index).string();
}

std::string ImageSource::identity(int64_t n) const {
  Fnv64 f;
  f.add(fmt::format("items={}", n));
  if (impl_->dataset) {
    f.add("dataset");
    f.add(read_file(impl_->dataset->dir() / "dataset.json"));
    return f.hex();
  }
  f.add("folder");
  std::error_code ec;
  for (int64_t i = 0; i < n && i < size(); ++i) {
    const fs::path& p = impl_->files[static_cast<size_t>(i)];
    f.add(p.lexically_relative(impl_->root).string());
    f.add(fmt::format("{} {}", fs::file_size(p, ec), fs::last_write_time(p, ec).time_since_epoch().count()));
  }
  return f.hex();
}

at::Tensor ImageSource::read(int64_t index) const {
  FACETEX_CHECK_USAGE(index >= 0 && index < size(), "image index {} out of range", index);
  if (impl_->dataset) {
    const int r = impl_->dataset->resolution();
    at::Tensor out = at::empty({3, r, r}, at::kByte);
    std::string scratch;
    const auto loc = impl_->dataset->locate(index);
    loc.shard->read_chw(loc.row, false, out.data_ptr<uint8_t>(), scratch);
    return out;
  }
  const fs::path& p = impl_->files[index];
  const data::Image im = data::decode_image(read_file(p), p.string());
  // Copied into a tensor that owns its pixels. (A permuted from_blob view of a 1x1 image is already "contiguous",
  // so .contiguous() kept pointing into `im`, freed on return: 1x1 images got random features.)
  at::Tensor out = at::empty({3, im.height, im.width}, at::kByte);
  data::hwc_to_chw(im.rgb.data(), im.height, im.width, /*xflip=*/false, out.data_ptr<uint8_t>());
  return out;
}

at::Tensor allgather_strided_rows(const at::Tensor& local_in, int64_t total, cluster::Communicator* comm) {
  const at::Tensor local = local_in.to(at::kCPU, at::kDouble).contiguous();
  if (comm == nullptr || comm->size() == 1) return local;
  const int size = comm->size();
  const int64_t per_rank = (total + size - 1) / size;  // the largest share (rank 0's)
  at::Tensor padded = at::zeros({per_rank, local.size(1)}, at::kDouble);
  FACETEX_CHECK_RUNTIME(local.size(0) <= per_rank, "rank holds {} rows, more than its share {}", local.size(0),
                        per_rank);
  if (local.size(0) > 0) padded.narrow(0, 0, local.size(0)).copy_(local);
  const at::Tensor all = comm->allgather(padded);  // [size, per_rank, D]
  at::Tensor out = at::empty({total, local.size(1)}, at::kDouble);
  for (int64_t i = 0; i < total; ++i) out[i].copy_(all[i % size][i / size]);
  return out;
}

at::Tensor gather_features(const ImageSource& source, FeatureExtractor& extractor, cluster::Communicator* comm,
                           int64_t max_items, int batch) {
  const int64_t n = max_items > 0 ? std::min(max_items, source.size()) : source.size();
  FACETEX_CHECK_USAGE(batch > 0, "batch must be > 0");
  const int rank = comm ? comm->rank() : 0, size = comm ? comm->size() : 1;
  std::vector<int64_t> mine;
  for (int64_t i = rank; i < n; i += size) mine.push_back(i);
  std::vector<at::Tensor> rows;
  std::vector<at::Tensor> pending;
  auto flush = [&] {
    if (pending.empty()) return;
    rows.push_back(extractor.features(at::stack(pending)));
    pending.clear();
  };
  // This rank's share; in a job's log (rank 0) a line every FACETEX_PROGRESS_INTERVAL seconds.
  Progress progress(fmt::format("{} features of {} items", extractor.name(), n), static_cast<int64_t>(mine.size()),
                    "images", "metrics");
  for (int64_t i : mine) {
    at::Tensor img = source.read(i);
    if (!pending.empty() && (pending.front().sizes() != img.sizes() || static_cast<int>(pending.size()) == batch)) flush();
    pending.push_back(img);
    progress.advance();
  }
  flush();
  progress.finish();
  const at::Tensor local = rows.empty() ? at::zeros({0, extractor.dim()}, at::kDouble) : at::cat(rows);
  return allgather_strided_rows(local, n, comm);
}

}  // namespace facetex::train::metrics
