#include "models/aux/mtcnn.h"

#include <ATen/ATen.h>

#include <type_traits>
#include <utility>

#include "core/error.h"
#include "models/aux/area_crops.h"
#include "models/aux/mtcnn_boxes.h"

namespace facetex::models::aux {

// Deliberate differences from facenet_pytorch's detect_face (none changes a result on ordinary inputs):
// - NMS runs strictly per group (grouped_nms) instead of torchvision's batched_nms / batched_nms_numpy, which
//   shift each image's boxes by image_index * (max coordinate + 1); with negative coordinates that shift can let
//   boxes of neighbouring images overlap.
// - A box whose crop window is empty (entirely outside the image) is dropped before RNet/ONet. facenet_pytorch
//   skips its crop but keeps the box, so every later crop is scored against the wrong box.
// - Crops are area-resampled from a float64 summed-area table (AreaCropSampler) rather than by per-crop
//   interpolate(mode='area') in float32: the same averages, rounded once instead of accumulated in float32
//   (differences of order 1e-6 relative).

namespace {

at::Tensor normalise(const at::Tensor& x) { return (x - 127.5) * 0.0078125; }

at::Tensor rows_where(const at::Tensor& t, const at::Tensor& mask) {
  return t.index_select(0, mask.nonzero().squeeze(1));
}

// (B, H, W, 3) or (B, 3, H, W) -> contiguous (B, 3, H, W) in the nets' dtype.
at::Tensor to_nchw(const at::Tensor& images, at::ScalarType dtype) {
  FACETEX_CHECK_RUNTIME(images.dim() == 4 && (images.size(3) == 3 || images.size(1) == 3),
                        "MTCNN: images must be [B, H, W, 3] or [B, 3, H, W], got {}", images.sizes().vec());
  const at::Tensor nchw = images.size(3) == 3 ? images.permute({0, 3, 1, 2}) : images;
  return nchw.to(dtype).contiguous();
}

// detect_face's generateBoundingBox for every image at one scale: each PNet output cell with P(face) >= threshold
// becomes the 12x12 window it saw, mapped back to input pixels. Returns (K, 9) [x1, y1, x2, y2, score, reg0..3]
// and the image of each row.
std::pair<at::Tensor, at::Tensor> proposals(const PNet::Output& out, double scale, double threshold) {
  constexpr int stride = 2, cell = 12;
  const at::Tensor prob = out.probability.select(1, 1);  // (B, h, w)
  const int64_t h = prob.size(1), w = prob.size(2);
  const at::Tensor where = (prob >= threshold).nonzero();  // (K, 3) [image, y, x], row-major like the mask order
  const at::Tensor image = where.select(1, 0);
  const at::Tensor flat = (image * h + where.select(1, 1)) * w + where.select(1, 2);
  const at::Tensor score = prob.reshape({-1}).index_select(0, flat);
  const at::Tensor reg = out.regression.permute({0, 2, 3, 1}).reshape({-1, 4}).index_select(0, flat);
  const at::Tensor xy = where.narrow(1, 1, 2).flip({1}).to(reg.scalar_type());
  const at::Tensor q1 = ((stride * xy + 1) / scale).floor();
  const at::Tensor q2 = ((stride * xy + cell) / scale).floor();
  return {at::cat({q1, q2, score.unsqueeze(1), reg}, 1), image};
}

// Runs `net` on at most `batch` crops at a time and concatenates each output field.
template <typename Net>
typename Net::Output run_chunked(const Net& net, const at::Tensor& crops, int64_t batch) {
  std::vector<typename Net::Output> parts;
  for (int64_t start = 0; start < crops.size(0); start += batch) {
    parts.push_back(net.forward(crops.narrow(0, start, std::min(batch, crops.size(0) - start))));
  }
  if (parts.size() == 1) return parts.front();
  auto cat = [&](at::Tensor Net::Output::*field) {
    std::vector<at::Tensor> pieces;
    for (const auto& p : parts) pieces.push_back(p.*field);
    return at::cat(pieces);
  };
  typename Net::Output out = parts.front();
  out.regression = cat(&Net::Output::regression);
  out.probability = cat(&Net::Output::probability);
  if constexpr (std::is_same_v<Net, ONet>) out.landmarks = cat(&Net::Output::landmarks);
  return out;
}

// Keeps the boxes whose crop window is non-empty and resamples their crops to size x size, normalised.
at::Tensor crops_of(const AreaCropSampler& sampler, at::Tensor& boxes, at::Tensor& image, int64_t height,
                    int64_t width, int64_t size) {
  CropWindows win = crop_windows(boxes, height, width);
  const at::Tensor ok = win.nonempty();
  if (!ok.all().item<bool>()) {
    const at::Tensor idx = ok.nonzero().squeeze(1);
    boxes = boxes.index_select(0, idx);
    image = image.index_select(0, idx);
    win = {win.top.index_select(0, idx), win.bottom.index_select(0, idx), win.left.index_select(0, idx),
           win.right.index_select(0, idx)};
  }
  return normalise(sampler.crops(image, win.top, win.bottom, win.left, win.right, size));
}

}  // namespace

std::vector<double> mtcnn_pyramid_scales(int64_t height, int64_t width, double min_face_size, double factor) {
  FACETEX_CHECK_USAGE(min_face_size > 0 && factor > 0 && factor < 1,
                      "MTCNN: min_face_size must be > 0 and factor in (0, 1), got {} and {}", min_face_size, factor);
  const double m = 12.0 / min_face_size;
  double min_side = static_cast<double>(std::min(height, width)) * m;
  double scale = m;
  std::vector<double> scales;
  while (min_side >= 12) {
    scales.push_back(scale);
    scale *= factor;
    min_side *= factor;
  }
  return scales;
}

Mtcnn::Mtcnn(std::shared_ptr<PNet> pnet, std::shared_ptr<RNet> rnet, std::shared_ptr<ONet> onet,
             MtcnnOptions options)
    : pnet_(std::move(pnet)), rnet_(std::move(rnet)), onet_(std::move(onet)), options_(options) {
  FACETEX_CHECK_USAGE(pnet_ && rnet_ && onet_, "MTCNN: all three nets are required");
  FACETEX_CHECK_USAGE(options_.net_batch > 0, "MTCNN: net_batch must be positive");
  mtcnn_pyramid_scales(12, 12, options_.min_face_size, options_.factor);  // validates the options
}

Mtcnn Mtcnn::load(const std::filesystem::path& pnet_file, const std::filesystem::path& rnet_file,
                  const std::filesystem::path& onet_file, MtcnnOptions options) {
  return Mtcnn(load_pnet(pnet_file), load_rnet(rnet_file), load_onet(onet_file), options);
}

void Mtcnn::to(const c10::Device& device) {
  pnet_->to(device);
  rnet_->to(device);
  onet_->to(device);
}

MtcnnFaces Mtcnn::detect_all(const at::Tensor& input) const {
  at::NoGradGuard no_grad;
  const at::Tensor weight = pnet_->parameters().front();
  FACETEX_CHECK_RUNTIME(input.device() == weight.device(), "MTCNN: images are on {} but the nets on {}",
                        input.device().str(), weight.device().str());
  const at::Tensor images = to_nchw(input, weight.scalar_type());
  const int64_t height = images.size(2), width = images.size(3);
  const auto& thr = options_.thresholds;
  const auto long_options = images.options().dtype(at::kLong);

  // Stage 1: PNet over the pyramid, NMS per image and scale, then per image.
  std::vector<at::Tensor> stage_boxes, stage_images;
  for (double scale : mtcnn_pyramid_scales(height, width, options_.min_face_size, options_.factor)) {
    const int64_t hs = static_cast<int64_t>(height * scale + 1), ws = static_cast<int64_t>(width * scale + 1);
    const at::Tensor resized = normalise(at::adaptive_avg_pool2d(images, {hs, ws}));
    auto [boxes, image] = proposals(pnet_->forward(resized), scale, thr[0]);
    const at::Tensor keep = grouped_nms(boxes, boxes.select(1, 4), image, {0.5});
    stage_boxes.push_back(boxes.index_select(0, keep));
    stage_images.push_back(image.index_select(0, keep));
  }
  at::Tensor boxes = stage_boxes.empty() ? at::empty({0, 9}, images.options()) : at::cat(stage_boxes);
  at::Tensor image = stage_images.empty() ? at::empty({0}, long_options) : at::cat(stage_images);
  {
    const at::Tensor keep = grouped_nms(boxes, boxes.select(1, 4), image, {0.7});
    boxes = boxes.index_select(0, keep);
    image = image.index_select(0, keep);
    // PNet's regression is relative to x2 - x1 (no +1, unlike bbreg).
    const at::Tensor regw = boxes.select(1, 2) - boxes.select(1, 0), regh = boxes.select(1, 3) - boxes.select(1, 1);
    boxes = square_boxes(at::stack({boxes.select(1, 0) + boxes.select(1, 5) * regw,
                                    boxes.select(1, 1) + boxes.select(1, 6) * regh,
                                    boxes.select(1, 2) + boxes.select(1, 7) * regw,
                                    boxes.select(1, 3) + boxes.select(1, 8) * regh, boxes.select(1, 4)},
                                   1));
  }

  MtcnnFaces faces{image.narrow(0, 0, 0), boxes.narrow(0, 0, 0).narrow(1, 0, 4), boxes.narrow(0, 0, 0).select(1, 4),
                   at::empty({0, 5, 2}, images.options())};
  if (boxes.size(0) == 0) return faces;
  const AreaCropSampler sampler(images);

  // Stage 2: RNet on 24x24 crops.
  {
    const at::Tensor crops = crops_of(sampler, boxes, image, height, width, 24);
    const RNet::Output out = run_chunked(*rnet_, crops, options_.net_batch);
    const at::Tensor score = out.probability.select(1, 1);
    const at::Tensor pass = score > thr[1];
    boxes = at::cat({rows_where(boxes.narrow(1, 0, 4), pass), rows_where(score, pass).unsqueeze(1)}, 1);
    image = rows_where(image, pass);
    const at::Tensor reg = rows_where(out.regression, pass);
    const at::Tensor keep = grouped_nms(boxes, boxes.select(1, 4), image, {0.7});
    boxes = square_boxes(regress_boxes(boxes.index_select(0, keep), reg.index_select(0, keep)));
    image = image.index_select(0, keep);
  }
  if (boxes.size(0) == 0) return faces;

  // Stage 3: ONet on 48x48 crops, landmarks placed in the box before its regression, NMS over the smaller box.
  const at::Tensor crops = crops_of(sampler, boxes, image, height, width, 48);
  const ONet::Output out = run_chunked(*onet_, crops, options_.net_batch);
  const at::Tensor score = out.probability.select(1, 1);
  const at::Tensor pass = score > thr[2];
  boxes = at::cat({rows_where(boxes.narrow(1, 0, 4), pass), rows_where(score, pass).unsqueeze(1)}, 1);
  image = rows_where(image, pass);
  const at::Tensor reg = rows_where(out.regression, pass), marks = rows_where(out.landmarks, pass);
  const at::Tensor x1 = boxes.select(1, 0).unsqueeze(1), y1 = boxes.select(1, 1).unsqueeze(1);
  const at::Tensor bw = (boxes.select(1, 2) - boxes.select(1, 0) + 1).unsqueeze(1);
  const at::Tensor bh = (boxes.select(1, 3) - boxes.select(1, 1) + 1).unsqueeze(1);
  const at::Tensor points =
      at::stack({bw * marks.narrow(1, 0, 5) + x1 - 1, bh * marks.narrow(1, 5, 5) + y1 - 1}, 2);  // (N, 5, 2)
  boxes = regress_boxes(boxes, reg);
  const at::Tensor keep =
      grouped_nms(boxes, boxes.select(1, 4), image, {0.7, Overlap::kMin, /*inclusive_pixels=*/true});
  boxes = boxes.index_select(0, keep);
  return {image.index_select(0, keep), boxes.narrow(1, 0, 4), boxes.select(1, 4), points.index_select(0, keep)};
}

MtcnnSelection Mtcnn::detect(const at::Tensor& images) const {
  return select_most_probable(detect_all(images), images.size(0));
}

MtcnnSelection select_most_probable(const MtcnnFaces& faces, int64_t batch) {
  const at::Tensor image = faces.image_index.cpu(), probs = faces.probs.to(at::kDouble).cpu();
  std::vector<int64_t> best(batch, -1);
  const int64_t* img = image.data_ptr<int64_t>();
  const double* p = probs.data_ptr<double>();
  for (int64_t i = 0; i < image.size(0); ++i) {
    FACETEX_CHECK_RUNTIME(img[i] >= 0 && img[i] < batch, "MTCNN: face of image {} in a batch of {}", img[i], batch);
    if (best[img[i]] < 0 || p[i] > p[best[img[i]]]) best[img[i]] = i;
  }
  std::vector<int64_t> rows, found_images;
  for (int64_t b = 0; b < batch; ++b) {
    if (best[b] >= 0) {
      rows.push_back(best[b]);
      found_images.push_back(b);
    }
  }
  const auto device = faces.boxes.device();
  const at::Tensor row = at::tensor(rows, at::kLong).to(device), dest = at::tensor(found_images, at::kLong).to(device);
  MtcnnSelection s;
  s.found = at::zeros({batch}, faces.boxes.options().dtype(at::kBool)).index_fill_(0, dest, true);
  s.boxes = at::zeros({batch, 4}, faces.boxes.options()).index_copy_(0, dest, faces.boxes.index_select(0, row));
  s.probs = at::zeros({batch}, faces.probs.options()).index_copy_(0, dest, faces.probs.index_select(0, row));
  s.points = at::zeros({batch, 5, 2}, faces.points.options()).index_copy_(0, dest, faces.points.index_select(0, row));
  return s;
}

}  // namespace facetex::models::aux
