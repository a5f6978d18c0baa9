#include "models/face3d/photo_fit.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "models/face3d/canonical_mesh.h"

namespace facetex::models::face3d {
namespace {

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<Vec3, 3>;

constexpr double kPi = 3.14159265358979323846;

Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
double norm(const Vec3& a) { return std::sqrt(dot(a, a)); }
Vec3 rotate(const Mat3& r, const Vec3& x) { return {dot(r[0], x), dot(r[1], x), dot(r[2], x)}; }
Mat3 matmul(const Mat3& a, const Mat3& b) {
  Mat3 c{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) c[i][j] += a[i][k] * b[k][j];
  return c;
}

// Rotation exp([w]x) (Rodrigues).
Mat3 rodrigues(const Vec3& w) {
  const double th = norm(w);
  Mat3 r{{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}};
  if (th < 1e-15) return r;
  const Vec3 k{w[0] / th, w[1] / th, w[2] / th};
  const double c = std::cos(th), s = std::sin(th), v = 1 - c;
  r[0] = {c + k[0] * k[0] * v, k[0] * k[1] * v - k[2] * s, k[0] * k[2] * v + k[1] * s};
  r[1] = {k[1] * k[0] * v + k[2] * s, c + k[1] * k[1] * v, k[1] * k[2] * v - k[0] * s};
  r[2] = {k[2] * k[0] * v - k[1] * s, k[2] * k[1] * v + k[0] * s, c + k[2] * k[2] * v};
  return r;
}

// Solves the n x n system a·x = b in place (Gaussian elimination, partial pivoting); false if singular.
template <int N>
bool solve(std::array<std::array<double, N>, N> a, std::array<double, N> b, std::array<double, N>* x) {
  for (int c = 0; c < N; ++c) {
    int p = c;
    for (int r = c + 1; r < N; ++r)
      if (std::abs(a[r][c]) > std::abs(a[p][c])) p = r;
    if (std::abs(a[p][c]) < 1e-300) return false;
    std::swap(a[p], a[c]);
    std::swap(b[p], b[c]);
    for (int r = c + 1; r < N; ++r) {
      const double f = a[r][c] / a[c][c];
      for (int k = c; k < N; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  for (int r = N - 1; r >= 0; --r) {
    double s = b[r];
    for (int k = r + 1; k < N; ++k) s -= a[r][k] * (*x)[k];
    (*x)[r] = s / a[r][r];
  }
  return true;
}

struct Problem {
  std::vector<Vec3> X;                   // model points
  std::vector<std::array<double, 2>> x;  // image points
};

double residuals(const Problem& p, const Mat3& r, double s, const std::array<double, 2>& t, double* max_out) {
  double sum = 0, mx = 0;
  for (size_t i = 0; i < p.X.size(); ++i) {
    const double dx = s * dot(r[0], p.X[i]) + t[0] - p.x[i][0];
    const double dy = s * dot(r[1], p.X[i]) + t[1] - p.x[i][1];
    const double d = std::hypot(dx, dy);
    sum += d;
    mx = std::max(mx, d);
  }
  if (max_out) *max_out = mx;
  return sum / static_cast<double>(p.X.size());
}

double sq_cost(const Problem& p, const Mat3& r, double s, const std::array<double, 2>& t) {
  double c = 0;
  for (size_t i = 0; i < p.X.size(); ++i) {
    const double dx = s * dot(r[0], p.X[i]) + t[0] - p.x[i][0];
    const double dy = s * dot(r[1], p.X[i]) + t[1] - p.x[i][1];
    c += dx * dx + dy * dy;
  }
  return c;
}

// Linear start: affine least squares x = A·X + t, then A -> s·[r1; r2] with orthonormal rows (nearest in the
// Frobenius norm: A = U·S·V^T -> U·V^T, s = mean singular value).
void linear_fit(const Problem& p, Mat3* r, double* s, std::array<double, 2>* t) {
  const size_t n = p.X.size();
  Vec3 mX{0, 0, 0};
  std::array<double, 2> mx{0, 0};
  for (size_t i = 0; i < n; ++i) {
    for (int k = 0; k < 3; ++k) mX[k] += p.X[i][k] / n;
    for (int k = 0; k < 2; ++k) mx[k] += p.x[i][k] / n;
  }
  std::array<std::array<double, 3>, 3> xtx{};  // sum Xc Xc^T
  std::array<std::array<double, 3>, 2> utx{};  // sum xc Xc^T
  double spread = 0;
  for (size_t i = 0; i < n; ++i) {
    const Vec3 c{p.X[i][0] - mX[0], p.X[i][1] - mX[1], p.X[i][2] - mX[2]};
    const std::array<double, 2> u{p.x[i][0] - mx[0], p.x[i][1] - mx[1]};
    spread += dot(c, c);
    for (int a = 0; a < 3; ++a) {
      for (int b = 0; b < 3; ++b) xtx[a][b] += c[a] * c[b];
      for (int b = 0; b < 2; ++b) utx[b][a] += u[b] * c[a];
    }
  }
  // A (2x3) = utx · xtx^-1: solve xtx · A^T = utx^T, one column of A^T (= row of A) at a time. Relative
  // regularisation keeps a (nearly) planar point set solvable; the SVD step below restores the rotation.
  for (int a = 0; a < 3; ++a) xtx[a][a] += 1e-12 * spread;
  std::array<Vec3, 2> A{};
  for (int row = 0; row < 2; ++row) {
    Vec3 sol{};
    FACETEX_CHECK_DATA(solve<3>(xtx, utx[row], &sol), "pose fit: the model points are degenerate");
    A[row] = sol;
  }
  // SVD of the 2x3 A via the eigen-decomposition of A·A^T (2x2 symmetric).
  const double a = dot(A[0], A[0]), b = dot(A[0], A[1]), c = dot(A[1], A[1]);
  const double tr = a + c, det = a * c - b * b;
  const double disc = std::sqrt(std::max(0.0, tr * tr / 4 - det));
  const double l1 = tr / 2 + disc, l2 = std::max(0.0, tr / 2 - disc);
  FACETEX_CHECK_DATA(l1 > 0 && l2 > 1e-12 * l1,
                     "pose fit: the landmarks are degenerate (collinear or coincident; singular values {} and {})",
                     std::sqrt(l1), std::sqrt(l2));
  std::array<std::array<double, 2>, 2> U{};  // columns = eigenvectors
  for (int k = 0; k < 2; ++k) {
    const double l = k == 0 ? l1 : l2;
    double ux = b, uy = l - a;  // (A A^T - l I) u = 0
    if (std::hypot(ux, uy) < 1e-12 * (std::abs(a) + std::abs(c))) {
      ux = l - c;
      uy = b;
    }
    if (std::hypot(ux, uy) < 1e-300) {  // A A^T = l I: any orthonormal basis
      ux = k == 0 ? 1 : 0;
      uy = k == 0 ? 0 : 1;
    }
    const double h = std::hypot(ux, uy);
    U[0][k] = ux / h;
    U[1][k] = uy / h;
  }
  if (std::abs(U[0][0] * U[0][1] + U[1][0] * U[1][1]) > 1e-6) {  // repeated eigenvalue: complete the basis
    U[0][1] = -U[1][0];
    U[1][1] = U[0][0];
  }
  const double sv[2] = {std::sqrt(l1), std::sqrt(l2)};
  std::array<Vec3, 2> V{};  // v_k = A^T u_k / s_k
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 3; ++j) V[k][j] = (U[0][k] * A[0][j] + U[1][k] * A[1][j]) / sv[k];
  // Re-orthonormalise V (rounding), then R2 = U·V^T.
  const double n0 = norm(V[0]);
  for (auto& v : V[0]) v /= n0;
  const double d01 = dot(V[0], V[1]);
  for (int j = 0; j < 3; ++j) V[1][j] -= d01 * V[0][j];
  const double n1 = norm(V[1]);
  for (auto& v : V[1]) v /= n1;
  Mat3 out{};
  for (int row = 0; row < 2; ++row)
    for (int j = 0; j < 3; ++j) out[row][j] = U[row][0] * V[0][j] + U[row][1] * V[1][j];
  out[2] = cross(out[0], out[1]);
  *r = out;
  *s = (sv[0] + sv[1]) / 2;
  (*t)[0] = mx[0] - *s * dot(out[0], mX);
  (*t)[1] = mx[1] - *s * dot(out[1], mX);
}

// Gauss-Newton on sum |s·P·R·X + t - x|^2 over (s, w, t) with R <- exp([w]x)·R.
int refine(const Problem& p, int max_iterations, Mat3* r, double* s, std::array<double, 2>* t) {
  double cost = sq_cost(p, *r, *s, *t);
  int it = 0;
  for (; it < max_iterations; ++it) {
    std::array<std::array<double, 6>, 6> jtj{};
    std::array<double, 6> jtr{};
    for (size_t i = 0; i < p.X.size(); ++i) {
      const Vec3 y = rotate(*r, p.X[i]);
      const double rx = *s * y[0] + (*t)[0] - p.x[i][0];
      const double ry = *s * y[1] + (*t)[1] - p.x[i][1];
      // d(R X)/dw = -[Y]x: row x = (0, y2, -y1), row y = (-y2, 0, y0).
      const std::array<double, 6> jx{y[0], 0, *s * y[2], -*s * y[1], 1, 0};
      const std::array<double, 6> jy{y[1], -*s * y[2], 0, *s * y[0], 0, 1};
      for (int a = 0; a < 6; ++a) {
        jtr[a] += jx[a] * rx + jy[a] * ry;
        for (int b = 0; b < 6; ++b) jtj[a][b] += jx[a] * jx[b] + jy[a] * jy[b];
      }
    }
    std::array<double, 6> neg{};
    for (int a = 0; a < 6; ++a) neg[a] = -jtr[a];
    std::array<double, 6> d{};
    if (!solve<6>(jtj, neg, &d)) break;
    const Mat3 r2 = matmul(rodrigues({d[1], d[2], d[3]}), *r);
    const double s2 = *s + d[0];
    const std::array<double, 2> t2{(*t)[0] + d[4], (*t)[1] + d[5]};
    const double c2 = sq_cost(p, r2, s2, t2);
    if (!(c2 <= cost) || s2 <= 0) break;  // no further progress (or NaN)
    *r = r2;
    *s = s2;
    *t = t2;
    const bool small = cost - c2 <= 1e-12 * (cost + 1e-30);
    cost = c2;
    if (small) {
      ++it;
      break;
    }
  }
  return it;
}

}  // namespace

std::array<double, 3> PoseFit::yaw_pitch_roll_degrees() const {
  // rotation_gl = Rz(roll)·Ry(yaw)·Rx(pitch).
  const auto g = rotation_gl();
  const double yaw = std::asin(std::clamp(-g[2][0], -1.0, 1.0));
  const double pitch = std::atan2(g[2][1], g[2][2]);
  const double roll = std::atan2(g[1][0], g[0][0]);
  return {yaw * 180 / kPi, pitch * 180 / kPi, roll * 180 / kPi};
}

std::array<std::array<double, 3>, 3> PoseFit::rotation_gl() const {
  auto g = rotation;
  for (int j = 0; j < 3; ++j) {
    g[1][j] = -g[1][j];
    g[2][j] = -g[2][j];
  }
  return g;
}

void project_vertices(const at::Tensor& vertices, const std::array<std::array<double, 3>, 3>& rotation, double scale,
                      const std::array<double, 2>& translation, at::Tensor* projected, at::Tensor* depth) {
  FACETEX_CHECK_USAGE(vertices.dim() == 2 && vertices.size(1) == 3, "vertices must be [V, 3], got {}",
                      vertices.sizes().vec());
  const at::Tensor v = vertices.to(at::kDouble).contiguous();
  const int64_t n = v.size(0);
  *projected = at::empty({n, 2}, at::kFloat);
  *depth = at::empty({n}, at::kFloat);
  const double* pv = v.data_ptr<double>();
  float* pp = projected->data_ptr<float>();
  float* pd = depth->data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    const Vec3 x{pv[3 * i], pv[3 * i + 1], pv[3 * i + 2]};
    pp[2 * i] = static_cast<float>(scale * dot(rotation[0], x) + translation[0]);
    pp[2 * i + 1] = static_cast<float>(scale * dot(rotation[1], x) + translation[1]);
    pd[i] = static_cast<float>(scale * dot(rotation[2], x));
  }
}

PoseFit fit_pose(const at::Tensor& vertices, const std::vector<int64_t>& fit_vertices, const at::Tensor& landmarks,
                 const PoseFitOptions& options) {
  FACETEX_CHECK_USAGE(vertices.dim() == 2 && vertices.size(1) == 3, "vertices must be [V, 3], got {}",
                      vertices.sizes().vec());
  FACETEX_CHECK_USAGE(landmarks.dim() == 2 && landmarks.size(1) == 2 &&
                          landmarks.size(0) == static_cast<int64_t>(fit_vertices.size()),
                      "landmarks must be [{}, 2], got {}", fit_vertices.size(), landmarks.sizes().vec());
  FACETEX_CHECK_DATA(fit_vertices.size() >= 4, "pose fit needs at least 4 landmarks, got {}", fit_vertices.size());
  const at::Tensor v = vertices.to(at::kDouble).contiguous();
  const at::Tensor l = landmarks.to(at::kDouble).contiguous();
  const double* pv = v.data_ptr<double>();
  const double* pl = l.data_ptr<double>();
  Problem p;
  for (size_t i = 0; i < fit_vertices.size(); ++i) {
    const int64_t k = fit_vertices[i];
    FACETEX_CHECK_USAGE(k >= 0 && k < v.size(0), "landmark {} maps to vertex {} of a {}-vertex mesh", i, k, v.size(0));
    FACETEX_CHECK_DATA(std::isfinite(pl[2 * i]) && std::isfinite(pl[2 * i + 1]), "landmark {} is not finite", i);
    p.X.push_back({pv[3 * k], pv[3 * k + 1], pv[3 * k + 2]});
    p.x.push_back({pl[2 * i], pl[2 * i + 1]});
  }
  PoseFit fit;
  linear_fit(p, &fit.rotation, &fit.scale, &fit.translation);
  if (options.refine) fit.iterations = refine(p, options.max_iterations, &fit.rotation, &fit.scale, &fit.translation);
  fit.mean_residual_px = residuals(p, fit.rotation, fit.scale, fit.translation, &fit.max_residual_px);
  project_vertices(vertices, fit.rotation, fit.scale, fit.translation, &fit.projected, &fit.depth);
  return fit;
}

PoseFit fit_dlib68(const CanonicalMesh& mesh, const std::vector<int64_t>& dlib68_to_mesh, const at::Tensor& landmarks68,
                   const PoseFitOptions& options) {
  FACETEX_CHECK_USAGE(dlib68_to_mesh.size() == 68, "the dlib-68 map has {} entries, expected 68",
                      dlib68_to_mesh.size());
  FACETEX_CHECK_USAGE(landmarks68.dim() == 2 && landmarks68.size(0) == 68 && landmarks68.size(1) == 2,
                      "landmarks must be [68, 2], got {}", landmarks68.sizes().vec());
  const std::vector<int64_t> inner(dlib68_to_mesh.begin() + 17, dlib68_to_mesh.end());
  return fit_pose(mesh.vertices, inner, landmarks68.slice(0, 17, 68), options);
}

}  // namespace facetex::models::face3d
