#include "models/face3d/landmark_fit.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "models/face3d/geometry.h"
#include "models/face3d/photo_fit.h"

namespace facetex::models::face3d {
namespace {

// Same limit as resize_n_crop: a resized image larger than this per side means the fit is nonsense.

// The model restricted to its 68 keypoints, in float64 on the CPU: centred mean positions and the basis rows.
struct KeypointModel {
  at::Tensor mean;  // [68, 3], centred like shape_formation()
  at::Tensor id;    // [68, 3, K_id]
  at::Tensor exp;   // [68, 3, K_exp]
};

KeypointModel keypoint_model(const MorphableModel& m) {
  const at::Tensor kp = m.keypoints.to(at::kCPU, at::kLong);
  const at::Tensor shape = m.mean_shape.to(at::kCPU, at::kDouble);
  KeypointModel k;
  k.mean = shape.index_select(0, kp) - shape.mean(0, /*keepdim=*/true);
  const at::Tensor rows = (kp.unsqueeze(1) * 3 + at::arange(3, at::kLong)).reshape({-1});  // [68*3]
  k.id = m.id_base.to(at::kCPU).index_select(0, rows).to(at::kDouble).reshape({68, 3, -1});
  k.exp = m.exp_base.to(at::kCPU).index_select(0, rows).to(at::kDouble).reshape({68, 3, -1});
  return k;
}

// Keypoints [b, L, 3] in the model frame for identity/expression coefficients (L = rows of `mean`).
at::Tensor keypoint_shape(const at::Tensor& mean, const at::Tensor& id_basis, const at::Tensor& exp_basis,
                          const at::Tensor& id, const at::Tensor& exp) {
  const int64_t b = id.size(0), l = mean.size(0);
  at::Tensor s = mean.unsqueeze(0).expand({b, l, 3});
  if (id_basis.size(2) > 0) s = s + at::matmul(id, id_basis.reshape({l * 3, -1}).t()).view({b, l, 3});
  if (exp_basis.size(2) > 0) s = s + at::matmul(exp, exp_basis.reshape({l * 3, -1}).t()).view({b, l, 3});
  return s;
}

// Rx, Ry, Rz and their derivatives for angles [b, 3] (float64).
struct Rotations {
  at::Tensor r, dx, dy, dz;  // [b, 3, 3]
};
Rotations rotations_with_derivatives(const at::Tensor& a) {
  const at::Tensor cx = a.select(1, 0).cos(), sx = a.select(1, 0).sin();
  const at::Tensor cy = a.select(1, 1).cos(), sy = a.select(1, 1).sin();
  const at::Tensor cz = a.select(1, 2).cos(), sz = a.select(1, 2).sin();
  const at::Tensor one = at::ones_like(cx), zero = at::zeros_like(cx);
  auto mat = [](std::initializer_list<at::Tensor> e) { return at::stack(std::vector<at::Tensor>(e), 1).view({-1, 3, 3}); };
  const at::Tensor rx = mat({one, zero, zero, zero, cx, -sx, zero, sx, cx});
  const at::Tensor ry = mat({cy, zero, sy, zero, one, zero, -sy, zero, cy});
  const at::Tensor rz = mat({cz, -sz, zero, sz, cz, zero, zero, zero, one});
  const at::Tensor drx = mat({zero, zero, zero, zero, -sx, -cx, zero, cx, -sx});
  const at::Tensor dry = mat({-sy, zero, cy, zero, zero, zero, -cy, zero, -sy});
  const at::Tensor drz = mat({-sz, -cz, zero, cz, -sz, zero, zero, zero, zero});
  Rotations o;
  o.r = at::bmm(rz, at::bmm(ry, rx));
  o.dx = at::bmm(rz, at::bmm(ry, drx));
  o.dy = at::bmm(rz, at::bmm(dry, rx));
  o.dz = at::bmm(drz, at::bmm(ry, rx));
  return o;
}

}  // namespace

at::Tensor project_keypoints(const MorphableModel& model, const at::Tensor& coeffs, const at::Tensor& crops,
                             const CameraOptions& camera) {
  const CoeffLayout layout = CoeffLayout::for_model(model);
  FACETEX_CHECK_RUNTIME(coeffs.dim() == 2 && coeffs.size(1) == layout.total() && crops.dim() == 2 &&
                            crops.size(1) == 3 && crops.size(0) == coeffs.size(0),
                        "project_keypoints: coeffs [B, {}] and crops [B, 3] expected, got {} and {}", layout.total(),
                        coeffs.sizes().vec(), crops.sizes().vec());
  const KeypointModel km = keypoint_model(model);
  const Coeffs c = split_coeffs(coeffs.to(at::kCPU, at::kDouble), layout);
  const at::Tensor shape = keypoint_shape(km.mean, km.id, km.exp, c.id, c.exp);
  const at::Tensor posed = rigid_transform(shape, rotation_matrices(c.angles), c.trans);
  // The renderer's projection, in its precision (float32).
  const at::Tensor screen = project_to_screen(posed.to(at::kFloat), intrinsics_from_bbox(crops.to(at::kCPU, at::kFloat), camera));
  return screen.narrow(2, 0, 2) - 0.5f;
}

LandmarkFit fit_landmarks(const MorphableModel& model, const at::Tensor& landmarks68, const at::Tensor& has_face,
                          int64_t height, int64_t width, const LandmarkFitOptions& o) {
  FACETEX_CHECK_RUNTIME(landmarks68.dim() == 3 && landmarks68.size(1) == 68 && landmarks68.size(2) == 2,
                        "fit_landmarks: landmarks must be [B, 68, 2], got {}", landmarks68.sizes().vec());
  FACETEX_CHECK_RUNTIME(height > 0 && width > 0, "fit_landmarks: image size must be positive");
  const int64_t batch = landmarks68.size(0);
  const CoeffLayout layout = CoeffLayout::for_model(model);
  const at::Tensor lm = landmarks68.to(at::kCPU, at::kDouble).contiguous();
  at::Tensor face = has_face.defined() ? has_face.to(at::kCPU, at::kBool).clone() : at::ones({batch}, at::kBool);
  face = face & at::isfinite(lm).all(2).all(1);

  LandmarkFit out;
  out.lm5 = landmarks68_to_5(lm).to(at::kFloat);
  out.coeffs = at::zeros({batch, layout.total()}, at::kFloat);
  out.projected = at::full({batch, 68, 2}, -1.0f);
  out.residual_px = at::full({batch}, -1.0f);
  const PosFit pos = pos_fit(landmarks68_to_5(lm), model_reference_lm3d(model).to(at::kCPU), height);
  out.crop = crop_boxes(pos, height, width, o.camera.crop, face, &out.valid);

  const at::Tensor rows = out.valid.nonzero().view({-1});
  const int64_t b = rows.size(0);
  if (b == 0) return out;

  // Fitted points: the 51 inner ones (or all 68).
  const int64_t first = o.use_jaw ? 0 : 17, l = 68 - first;
  const KeypointModel km = keypoint_model(model);
  const at::Tensor mean = km.mean.narrow(0, first, l);
  const bool shape = o.fit_shape;
  const at::Tensor id_b = shape ? km.id.narrow(0, first, l) : km.id.narrow(0, first, l).narrow(2, 0, 0);
  const at::Tensor exp_b = shape ? km.exp.narrow(0, first, l) : km.exp.narrow(0, first, l).narrow(2, 0, 0);
  const int64_t ki = id_b.size(2), ke = exp_b.size(2), np = 6 + ki + ke;

  const at::Tensor crop = out.crop.index_select(0, rows);
  const CameraIntrinsics cam = intrinsics_from_bbox(crop, o.camera);
  const at::Tensor fx = cam.fx.to(at::kDouble).view({b, 1}), fy = cam.fy.to(at::kDouble).view({b, 1});
  const at::Tensor cx = cam.cx.to(at::kDouble).view({b, 1}), cy = cam.cy.to(at::kDouble).view({b, 1});
  const double d = cam.distance;
  // Residuals in pixels of the 224 crop (s' per original pixel): the prior weights then do not depend on the
  // image size.
  const at::Tensor sp = (o.camera.crop.rescale_factor / crop.select(1, 2).to(at::kDouble)).view({b, 1, 1});
  const at::Tensor target = lm.index_select(0, rows).narrow(1, first, l) + 0.5;  // continuous screen coordinates

  // Start: a scaled-orthographic fit of the mean keypoints (photo_fit.h) gives the rotation and, through the
  // camera, a translation.
  at::Tensor p = at::zeros({b, np}, at::kDouble);
  {
    std::vector<int64_t> ids(static_cast<size_t>(l));
    for (int64_t k = 0; k < l; ++k) ids[static_cast<size_t>(k)] = first + k;
    const at::Tensor verts = km.mean.to(at::kFloat);
    auto pa = p.accessor<double, 2>();
    for (int64_t i = 0; i < b; ++i) {
      PoseFit pf;
      try {
        pf = fit_pose(verts, ids, target[i].to(at::kFloat));
      } catch (const DataError&) {
        continue;  // degenerate landmarks: start frontal at the origin; the fit or the checks below decide
      }
      // photo_fit's rotation maps to (x right, y down, depth away); the model's camera frame has y up, z towards
      // the viewer: R = diag(1, -1, -1)·R_photo = Rz·Ry·Rx.
      const auto& g = pf.rotation;
      const double r00 = g[0][0], r10 = -g[1][0], r20 = -g[2][0], r21 = -g[2][1], r22 = -g[2][2];
      pa[i][0] = std::atan2(r21, r22);
      pa[i][1] = std::asin(std::clamp(-r20, -1.0, 1.0));
      pa[i][2] = std::atan2(r10, r00);
      const double fxi = cam.fx[i].item<double>(), fyi = cam.fy[i].item<double>();
      const double depth = std::max(1.0, fyi / std::max(pf.scale, 1e-9));  // d - tz
      pa[i][5] = d - depth;
      pa[i][3] = (pf.translation[0] - cam.cx[i].item<double>()) * depth / fxi;
      pa[i][4] = -(pf.translation[1] - cam.cy[i].item<double>()) * depth / fyi;
    }
  }
  at::Tensor prior = at::zeros({np}, at::kDouble);
  if (ki > 0) prior.narrow(0, 6, ki).fill_(o.id_weight);
  if (ke > 0) prior.narrow(0, 6 + ki, ke).fill_(o.exp_weight);

  struct Eval {
    at::Tensor res;    // [b, 2l] crop pixels
    at::Tensor cost;   // [b]
    at::Tensor ok;     // [b] every point in front of the camera
    at::Tensor jac;    // [b, 2l, np]
  };
  auto evaluate = [&](const at::Tensor& q, bool with_jacobian) {
    const at::Tensor angles = q.narrow(1, 0, 3), trans = q.narrow(1, 3, 3);
    const at::Tensor s = keypoint_shape(mean, id_b, exp_b, q.narrow(1, 6, ki), q.narrow(1, 6 + ki, ke));
    const Rotations r = rotations_with_derivatives(angles);
    const at::Tensor v = at::bmm(s, r.r.transpose(1, 2)) + trans.unsqueeze(1);  // [b, l, 3]
    const at::Tensor vx = v.select(2, 0), vy = v.select(2, 1), depth = d - v.select(2, 2);
    const at::Tensor u = cx + fx * vx / depth, w = cy - fy * vy / depth;
    Eval e;
    e.res = ((at::stack({u, w}, 2) - target) * sp).reshape({b, 2 * l});
    e.cost = e.res.square().sum(1) + (q.square() * prior).sum(1);
    e.ok = (depth.amin(1) > 0.05 * d) & at::isfinite(e.cost);
    if (!with_jacobian) return e;
    // dV/dq [b, l, 3, np]: angles, translation, identity, expression.
    std::vector<at::Tensor> parts = {at::bmm(s, r.dx.transpose(1, 2)).unsqueeze(3),
                                     at::bmm(s, r.dy.transpose(1, 2)).unsqueeze(3),
                                     at::bmm(s, r.dz.transpose(1, 2)).unsqueeze(3),
                                     at::eye(3, at::kDouble).view({1, 1, 3, 3}).expand({b, l, 3, 3})};
    if (ki > 0) parts.push_back(at::einsum("bij,ljk->blik", {r.r, id_b}));
    if (ke > 0) parts.push_back(at::einsum("bij,ljk->blik", {r.r, exp_b}));
    const at::Tensor dv = at::cat(parts, 3);
    const at::Tensor inv = 1.0 / depth;
    const at::Tensor du_dv = at::stack({fx * inv, at::zeros_like(inv), fx * vx * inv * inv}, 2);   // [b, l, 3]
    const at::Tensor dw_dv = at::stack({at::zeros_like(inv), -fy * inv, -fy * vy * inv * inv}, 2);
    const at::Tensor ju = (du_dv.unsqueeze(3) * dv).sum(2), jw = (dw_dv.unsqueeze(3) * dv).sum(2);  // [b, l, np]
    e.jac = (at::stack({ju, jw}, 2) * sp.unsqueeze(3)).reshape({b, 2 * l, np});
    return e;
  };

  at::Tensor lambda = at::full({b}, 1e-3, at::kDouble);
  at::Tensor done = at::zeros({b}, at::kBool);
  const at::Tensor eye = at::eye(np, at::kDouble).unsqueeze(0);
  int it = 0;
  for (; it < o.iterations && !done.all().item<bool>(); ++it) {
    const Eval e = evaluate(p, true);
    const at::Tensor jt = e.jac.transpose(1, 2);
    const at::Tensor h = at::bmm(jt, e.jac) + at::diag_embed(prior.expand({b, np}));
    const at::Tensor g = at::bmm(jt, e.res.unsqueeze(2)).squeeze(2) + prior * p;
    const at::Tensor damp = at::diag_embed(h.diagonal(0, 1, 2).clamp_min(1e-9)) * lambda.view({b, 1, 1});
    const at::Tensor step = at::linalg_solve(h + damp + 1e-12 * eye, -g.unsqueeze(2)).squeeze(2);
    const at::Tensor trial = p + step;
    const Eval f = evaluate(trial, false);
    const at::Tensor accept = f.ok & (f.cost < e.cost) & at::isfinite(step).all(1) & ~done;
    p = at::where(accept.unsqueeze(1), trial, p);
    lambda = at::where(accept, lambda / 3, lambda * 4);
    const at::Tensor tiny = (e.cost - f.cost) <= 1e-10 * e.cost + 1e-12;
    done = done | (accept & tiny) | (lambda > 1e8);
  }
  out.iterations = it;

  // Results for the fitted rows.
  const Eval e = evaluate(p, false);
  const at::Tensor res_px = (e.res.view({b, l, 2}) / sp).norm(2, {2}).mean(1);
  const at::Tensor good = e.ok & at::isfinite(p).all(1);
  Coeffs c;
  c.id = at::zeros({b, layout.id}, at::kDouble);
  c.exp = at::zeros({b, layout.exp}, at::kDouble);
  if (ki > 0) c.id.copy_(p.narrow(1, 6, ki));
  if (ke > 0) c.exp.copy_(p.narrow(1, 6 + ki, ke));
  c.tex = at::zeros({b, layout.tex}, at::kDouble);
  c.angles = p.narrow(1, 0, 3);
  c.light = at::zeros({b, layout.light}, at::kDouble);
  c.trans = p.narrow(1, 3, 3);
  const at::Tensor coeffs = at::where(good.unsqueeze(1), join_coeffs(c), at::zeros({1}, at::kDouble)).to(at::kFloat);
  out.coeffs.index_copy_(0, rows, coeffs);
  out.residual_px.index_copy_(0, rows, at::where(good, res_px, at::full({1}, -1.0, at::kDouble)).to(at::kFloat));
  out.projected.index_copy_(0, rows, project_keypoints(model, coeffs, crop, o.camera));
  // Rows whose fit failed (points behind the camera, NaN) fall back to the no-face convention.
  const at::Tensor bad = rows.index_select(0, (~good).nonzero().view({-1}));
  if (bad.numel() > 0) {
    out.valid.index_fill_(0, bad, false);
    out.coeffs.index_fill_(0, bad, 0.0);
    for (int k = 0; k < 3; ++k) out.crop.select(1, k).index_fill_(0, bad, kNoFaceBbox[k]);
    out.projected.index_fill_(0, bad, -1.0);
  }
  return out;
}

}  // namespace facetex::models::face3d
