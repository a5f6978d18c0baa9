#!/usr/bin/python3
"""Reference values for tests/metrics/test_metrics.cpp, computed with numpy only (no skimage/scipy here).

SSIM follows skimage.metrics.structural_similarity literally: scipy.ndimage.uniform_filter (size 7, mode 'reflect'
= symmetric padding by 3) over the whole image, then the map cropped by 3 px, mean per channel, mean over channels.
The C++ side uses a valid 7x7 box filter instead; agreement shows the crop makes the padding irrelevant.
Run: /usr/bin/python3 tests/metrics/make_metric_fixtures.py  (prints the numbers pasted into the test).
"""
import numpy as np

H, W = 11, 13


def images():
    c, y, x = np.meshgrid(np.arange(3), np.arange(H), np.arange(W), indexing="ij")
    t = ((x * 7 + y * 13 + c * 5) % 17) / 16.0
    r = ((x * 3 + y * 5 + c * 11) % 19) / 18.0 * 0.9 + 0.05
    m = (((x + y) % 4) != 0).astype(np.float64)[0]
    return t, r, m


def uniform_filter_reflect(a, size=7):
    p = size // 2
    a = np.pad(a, p, mode="symmetric")  # scipy 'reflect' == numpy 'symmetric'
    out = np.zeros((a.shape[0] - 2 * p, a.shape[1] - 2 * p))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = a[i:i + size, j:j + size].mean()
    return out


def ssim_channel(x, y, data_range, win=7, k1=0.01, k2=0.03):
    np_ = win * win
    cov_norm = np_ / (np_ - 1)
    ux, uy = uniform_filter_reflect(x), uniform_filter_reflect(y)
    uxx, uyy, uxy = uniform_filter_reflect(x * x), uniform_filter_reflect(y * y), uniform_filter_reflect(x * y)
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return s[pad:-pad, pad:-pad].mean()


def recon():
    t, r, m = images()
    tm, rm = t * m, r * m
    dr = rm.max() - rm.min()
    ssim = np.mean([ssim_channel(tm[c], rm[c], dr) for c in range(3)])
    psnr = 10 * np.log10(dr ** 2 / np.mean((tm - rm) ** 2))
    l1 = np.abs(tm - rm).sum() / (3 * m.sum())
    ssim_unmasked = np.mean([ssim_channel(t[c], r[c], 1.0) for c in range(3)])
    print(f"masked: data_range {dr!r} ssim {ssim!r} psnr {psnr!r} l1 {l1!r}")
    print(f"unmasked ssim (data_range 1) {ssim_unmasked!r}")


def features(n, d, phase, scale):
    i, j = np.meshgrid(np.arange(n), np.arange(d), indexing="ij")
    return scale * np.sin(i * 0.37 * (j + 1) + j * 1.3 + phase) + 0.1 * j


def fid(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1 = a.T @ a / len(a) - np.outer(mu1, mu1)
    s2 = b.T @ b / len(b) - np.outer(mu2, mu2)
    ev = np.linalg.eigvals(s1 @ s2)  # Tr sqrtm(S1 S2) = sum sqrt(eig(S1 S2)) for PSD S1, S2
    return float(np.real(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2) - 2 * np.sqrt(ev.astype(complex)).sum()))


def kid_full(real, gen):
    # stylegan2-ada kernel_inception_distance with m = n_real = n_gen: every subset is a permutation of the whole
    # set, and the sums are permutation-invariant, so one subset gives the exact value.
    n = real.shape[1]
    m = len(real)
    x, y = gen, real
    a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
    b = (x @ y.T / n + 1) ** 3
    t = (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / m)


if __name__ == "__main__":
    recon()
    real, gen = features(30, 8, 0.0, 1.0), features(30, 8, 0.5, 1.3)
    print(f"fid(real 30x8, gen 30x8) {fid(real, gen)!r}")
    print(f"kid(real 30x8, gen 30x8) {kid_full(real, gen)!r}")
    print(f"kid(real, real) {kid_full(real, real)!r}")
