// `facetex metrics recon`: the reconstruction metrics of recon_test.py (recon_metrics.h) over a set of items, plus
// identity cosine similarity: with LightCNN-29v2 when its converted weights are given (the paper's choice: unmasked
// crops, channel mean, 128x128, 256-D fc feature; column id_cos_lightcnn), otherwise with dlib's face-recognition
// ResNet (column id_cos_dlib, described below). Items come from
//   - a reconstruction output folder (`facetex reconstruct --out`): every non-hidden sub-folder holding target_crop.png, proj_composed_crop.png and
//     mask_crop.png (the per-sample files of the paper's projector, spec §7/§9.1), or, without the crops,
//     target.png, proj_composed.png and mask.png; or
//   - three folders of PNG/JPEG files matched by relative path: --pred, --target, --mask.
// Identity: dlib landmarks on the target image give one aligned 150x150 chip transform, applied to target and
// reconstruction alike (unmasked, as recon_test.py); without a detected face both whole images are resized to
// 150x150. Under several ranks the items are split i % size == rank and the rows gathered, so the means do not
// depend on the rank count.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace facetex::cluster {
class Communicator;
}

namespace facetex::train::metrics {

struct ReconItem {
  std::string name;
  std::filesystem::path target, pred, mask;
};
// DataError when nothing is found.
std::vector<ReconItem> find_recon_outputs(const std::filesystem::path& outputs_dir);
std::vector<ReconItem> match_recon_folders(const std::filesystem::path& pred_dir, const std::filesystem::path& target_dir,
                                           const std::filesystem::path& mask_dir);

struct ReconEvalOptions {
  std::filesystem::path light_cnn;          // converted LightCNN-29v2 weights; takes precedence over face_api
  std::filesystem::path face_api_manifest;  // empty (and no light_cnn): no identity column
  std::filesystem::path shape_predictor;    // empty: chips by resizing the whole image
  std::string device = "cpu";
};

struct ReconItemScores {
  std::string name;
  double ssim = 0, psnr = 0, l1 = 0, id_cos = 0;  // id_cos NaN without identity features
  bool face_found = false;
};
struct ReconEvalReport {
  std::vector<ReconItemScores> items;  // in item order
  double ssim = 0, psnr = 0, l1 = 0, id_cos = 0;  // means (psnr over finite values)
  std::string id_label = "id_cos_dlib";
};

ReconEvalReport evaluate_recon(const std::vector<ReconItem>& items, const ReconEvalOptions& options,
                               cluster::Communicator* comm);

}  // namespace facetex::train::metrics
