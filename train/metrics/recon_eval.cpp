#include "train/metrics/recon_eval.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "cluster/communicator.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "data/image_codec.h"
#include "models/aux/dlib_face_resnet.h"
#include "models/aux/light_cnn.h"
#include "train/metrics/features.h"
#include "train/metrics/recon_metrics.h"

namespace fs = std::filesystem;

namespace facetex::train::metrics {
namespace {

data::Image load(const fs::path& p) { return data::decode_image(read_file(p), p.string()); }

at::Tensor chw01(const data::Image& im) {
  return at::from_blob(const_cast<uint8_t*>(im.rgb.data()), {im.height, im.width, 3}, at::kByte)
             .permute({2, 0, 1})
             .to(at::kDouble) /
         255.0;
}

std::vector<fs::path> image_files(const fs::path& dir) {
  std::vector<fs::path> out;
  FACETEX_CHECK_DATA(fs::is_directory(dir), "{}: no such folder", dir.string());
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::string x = e.path().extension().string();
    std::transform(x.begin(), x.end(), x.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (x == ".png" || x == ".jpg" || x == ".jpeg") out.push_back(fs::relative(e.path(), dir));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::vector<ReconItem> find_recon_outputs(const fs::path& dir) {
  FACETEX_CHECK_DATA(fs::is_directory(dir), "{}: no such folder", dir.string());
  std::vector<ReconItem> items;
  std::vector<fs::path> subdirs;
  // Hidden folders are skipped: `facetex reconstruct` writes each item into .partial-<name>-<pid> and renames it
  // into place when complete.
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
    if (!it->is_directory()) continue;
    if (it->path().filename().string().rfind('.', 0) == 0) {
      it.disable_recursion_pending();
      continue;
    }
    subdirs.push_back(it->path());
  }
  subdirs.push_back(dir);
  std::sort(subdirs.begin(), subdirs.end());
  for (const auto& d : subdirs) {
    for (const char* suffix : {"_crop", ""}) {
      const std::string s = suffix;
      const fs::path t = d / ("target" + s + ".png"), p = d / ("proj_composed" + s + ".png"), m = d / ("mask" + s + ".png");
      if (fs::is_regular_file(t) && fs::is_regular_file(p) && fs::is_regular_file(m)) {
        items.push_back({fs::relative(d, dir).string(), t, p, m});
        break;
      }
    }
  }
  FACETEX_CHECK_DATA(!items.empty(),
                     "{}: no reconstruction outputs (folders with target[_crop].png, proj_composed[_crop].png and "
                     "mask[_crop].png); use --pred/--target/--mask for other layouts",
                     dir.string());
  return items;
}

std::vector<ReconItem> match_recon_folders(const fs::path& pred_dir, const fs::path& target_dir,
                                           const fs::path& mask_dir) {
  std::vector<ReconItem> items;
  for (const fs::path& rel : image_files(pred_dir)) {
    FACETEX_CHECK_DATA(fs::is_regular_file(target_dir / rel), "{}: no target for {}", (target_dir / rel).string(),
                       (pred_dir / rel).string());
    FACETEX_CHECK_DATA(fs::is_regular_file(mask_dir / rel), "{}: no mask for {}", (mask_dir / rel).string(),
                       (pred_dir / rel).string());
    items.push_back({rel.string(), target_dir / rel, pred_dir / rel, mask_dir / rel});
  }
  FACETEX_CHECK_DATA(!items.empty(), "{}: no images", pred_dir.string());
  return items;
}

ReconEvalReport evaluate_recon(const std::vector<ReconItem>& items, const ReconEvalOptions& o,
                               cluster::Communicator* comm) {
  const c10::Device device(o.device);
  std::unique_ptr<models::aux::DlibFaceResNet> net;
  std::unique_ptr<models::aux::DlibLandmarker> landmarker;
  std::shared_ptr<models::aux::LightCnn29v2> light_cnn;
  if (!o.light_cnn.empty()) {
    light_cnn = models::aux::load_light_cnn(o.light_cnn, "", device);
  } else if (!o.face_api_manifest.empty()) {
    net = std::make_unique<models::aux::DlibFaceResNet>(o.face_api_manifest, device);
  }
  if (net && !o.shape_predictor.empty()) landmarker = std::make_unique<models::aux::DlibLandmarker>(o.shape_predictor);
  const int rank = comm ? comm->rank() : 0, size = comm ? comm->size() : 1;
  const int64_t n = static_cast<int64_t>(items.size());
  std::vector<at::Tensor> rows;
  Progress progress("reconstruction metrics", (n - rank + size - 1) / size, "items", "metrics");
  for (int64_t i = rank; i < n; i += size) {
    progress.advance();
    const ReconItem& it = items[i];
    const data::Image target = load(it.target), pred = load(it.pred), mask = load(it.mask);
    FACETEX_CHECK_DATA(target.height == pred.height && target.width == pred.width && mask.height == target.height &&
                           mask.width == target.width,
                       "{}: target, reconstruction and mask differ in size ({} {}x{}, {} {}x{}, {} {}x{})", it.name,
                       it.target.string(), target.width, target.height, it.pred.string(), pred.width, pred.height,
                       it.mask.string(), mask.width, mask.height);
    ReconScores s;
    try {
      s = masked_recon_metrics(chw01(target), chw01(pred), chw01(mask).narrow(0, 0, 1));
    } catch (const DataError& e) {  // e.g. an all-zero mask: name the item's files
      throw DataError(fmt::format("{} (mask {}): {}", it.pred.string(), it.mask.string(), e.what()));
    }
    double id = std::numeric_limits<double>::quiet_NaN(), face = 0;
    if (light_cnn) {
      const at::Tensor f = light_cnn->identity_features(at::stack({chw01(target), chw01(pred)}));
      id = cosine_similarity_rows(f.narrow(0, 0, 1), f.narrow(0, 1, 1))[0].item<double>();
    } else if (net) {
      std::vector<std::vector<uint8_t>> chips;
      std::vector<models::aux::DetectedFace> faces;
      if (landmarker) faces = landmarker->detect(target.rgb.data(), target.height, target.width);
      if (!faces.empty()) {
        face = 1;
        for (const data::Image* im : {&target, &pred})
          chips.push_back(models::aux::extract_face_chip(im->rgb.data(), im->height, im->width, faces[0].landmarks));
      }
      at::Tensor batch;
      if (!chips.empty()) {
        batch = models::aux::chips_to_tensor(chips).to(at::kFloat);
      } else {
        const int c = models::aux::DlibFaceResNet::kChipSize;
        batch = at::_upsample_bilinear2d_aa(at::stack({chw01(target), chw01(pred)}).to(at::kFloat) * 255, {c, c},
                                            false)
                    .clamp(0, 255);
      }
      const at::Tensor d = net->descriptor(batch);
      id = cosine_similarity_rows(d.narrow(0, 0, 1), d.narrow(0, 1, 1))[0].item<double>();
    }
    rows.push_back(at::tensor({s.ssim, s.psnr, s.l1, id, face}, at::kDouble).unsqueeze(0));
  }
  progress.finish();
  const at::Tensor local = rows.empty() ? at::zeros({0, 5}, at::kDouble) : at::cat(rows);
  const at::Tensor all = allgather_strided_rows(local, n, comm);
  ReconEvalReport r;
  if (light_cnn) r.id_label = "id_cos_lightcnn";
  auto a = all.accessor<double, 2>();
  int64_t finite_psnr = 0;
  for (int64_t i = 0; i < n; ++i) {
    ReconItemScores s{items[i].name, a[i][0], a[i][1], a[i][2], a[i][3], a[i][4] > 0};
    r.ssim += s.ssim;
    r.l1 += s.l1;
    r.id_cos += s.id_cos;
    if (std::isfinite(s.psnr)) {
      r.psnr += s.psnr;
      ++finite_psnr;
    }
    r.items.push_back(s);
  }
  r.ssim /= n;
  r.l1 /= n;
  r.id_cos /= n;
  r.psnr = finite_psnr ? r.psnr / finite_psnr : std::numeric_limits<double>::infinity();
  return r;
}

}  // namespace facetex::train::metrics
