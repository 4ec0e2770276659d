"""Estimators of the noise level nu of an observation ``y = A v + w``, ``w ~ N(0, nu^2 Id)`` ([0, 1] units).

Three estimators (:data:`ESTIMATORS`), each ``f(y, mask=None) -> float`` for a (B, C, H, W) image
(one level for the whole batch; with a 0/1 ``mask``, 1 = observed, only observed pixels count):

* ``"haar-mad"``: :func:`~inrd.restoration.physics.estimate_noise`, the median absolute value of the
  finest Haar diagonal coefficients / 0.6745 (Donoho & Johnstone 1994);
* ``"wavelet"``: scikit-image's ``skimage.restoration.estimate_sigma``, the same MAD rule on the
  finest Daubechies-1 diagonal sub-band of ``pywt.dwt2`` per channel, averaged (no mask);
* ``"pca"``: the patch-based estimator of Chen, Zhu & Heng ("An efficient statistical method for image
  noise level estimation", ICCV 2015): the eigenvalues of the covariance of all ``p x p x C`` patches
  that a clean image leaves small (natural images have a low-rank patch space) are those of the
  noise alone, ``nu^2``; the noise eigenvalues are the largest tail of the spectrum whose mean equals
  its median (a Marchenko-Pastur bulk is near symmetric, image eigenvalues are not), and nu is the
  square root of their mean.

:func:`estimate_noise_level` uses :data:`DEFAULT_ESTIMATOR`, the one that measured best on clean,
noisy and JPEG-compressed photographs (``benchmarks/noise_level.py``; errors in docs/real_photographs.md).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..choices import NoiseEstimator, choose
from ..validate import check_image
from .physics import NOISE_ESTIMATOR, estimate_noise

__all__ = ["NoiseEstimator", "ESTIMATORS", "DESCRIPTIONS", "DEFAULT_ESTIMATOR", "estimator_for", "estimate_noise_level", "haar_mad",
           "wavelet_mad", "pca_patches", "PATCH", "MAX_PATCHES"]

#: patch side of :func:`pca_patches` (Chen et al. use 7-8) and the most patches it takes: every patch
#: (stride 1) up to that number, then a growing stride so that the covariance stays cheap (d = C p^2 = 192
#: for colour). Fewer patches widen the spread of the noise eigenvalues (Marchenko-Pastur, aspect d / N),
#: whose skew biases the estimate down
PATCH = 8
MAX_PATCHES = 40_000


def haar_mad(y: torch.Tensor, mask: Optional[torch.Tensor] = None) -> float:
    """Median absolute finest Haar diagonal coefficient / 0.6745 (:func:`~inrd.restoration.physics.estimate_noise`)."""
    return estimate_noise(y, mask)


def wavelet_mad(y: torch.Tensor, mask: Optional[torch.Tensor] = None) -> float:
    """scikit-image's ``estimate_sigma`` per image and channel, averaged over both. No mask."""
    check_image(y, "observation")
    if mask is not None:
        raise ValueError("the 'wavelet' noise estimator (skimage.restoration.estimate_sigma) takes no mask; use 'pca' or 'haar-mad'.")
    from skimage.restoration import estimate_sigma

    a = y.detach().double().cpu().numpy()
    return float(sum(estimate_sigma(c) for img in a for c in img) / (a.shape[0] * a.shape[1]))


def _patches(y: torch.Tensor, mask: Optional[torch.Tensor], p: int) -> torch.Tensor:
    """All (or, past :data:`MAX_PATCHES`, regularly strided) fully observed p x p x C patches, (N, C p^2)."""
    H, W = y.shape[-2:]
    stride = 1
    n_per_image = (H - p + 1) * (W - p + 1)
    while n_per_image * y.shape[0] > MAX_PATCHES:
        stride += 1
        n_per_image = ((H - p) // stride + 1) * ((W - p) // stride + 1)
    v = torch.nn.functional.unfold(y.double(), p, stride=stride)  # (B, C p^2, L)
    cols = v.transpose(1, 2).reshape(-1, v.shape[1])
    if mask is not None:
        m = mask.to(y.device).double().expand(y.shape[0], 1, H, W)
        full = torch.nn.functional.unfold(m, p, stride=stride).amin(dim=1).reshape(-1) > 0.5
        cols = cols[full]
    return cols


def pca_patches(y: torch.Tensor, mask: Optional[torch.Tensor] = None, patch: int = PATCH) -> float:
    """Chen, Zhu & Heng (ICCV 2015): nu^2 = the mean of the largest tail of the ascending patch-covariance
    spectrum whose mean and median agree (as many eigenvalues above the mean as below). See the module."""
    check_image(y, "observation")
    H, W = y.shape[-2:]
    if H < patch or W < patch:
        raise ValueError(f"cannot estimate the noise of a {H}x{W} image with {patch}x{patch} patches; give --noise-level NU.")
    X = _patches(y, mask, patch)
    d = X.shape[1]
    if X.shape[0] < 2 * d:
        raise ValueError(f"too few fully observed {patch}x{patch} patches ({X.shape[0]}) to estimate the noise; give --noise-level NU.")
    X = X - X.mean(dim=0, keepdim=True)
    lam = torch.linalg.eigvalsh(X.T @ X / X.shape[0]).clamp(min=0)  # ascending
    for i in range(d, 0, -1):  # the smallest i eigenvalues: the noise, once mean and median agree
        tail = lam[:i]
        tau = tail.mean()
        if int((tail > tau).sum()) == int((tail < tau).sum()):
            return float(tau.sqrt())
    return float(lam[0].sqrt())  # unreachable: one eigenvalue is its own mean and median


#: the estimators by name
ESTIMATORS: dict[str, Callable] = {"haar-mad": haar_mad, "wavelet": wavelet_mad, "pca": pca_patches}

#: how each estimator works, in one line, to record beside its value (as ``physics.NOISE_ESTIMATOR``)
DESCRIPTIONS: dict[str, str] = {
    "haar-mad": NOISE_ESTIMATOR,
    "wavelet": "skimage.restoration.estimate_sigma: median(|HH|) / 0.6745 of the finest db1 diagonal band, per channel, averaged",
    "pca": f"Chen, Zhu & Heng 2015: mean of the noise tail of the {PATCH}x{PATCH}xC patch-covariance spectrum (mean = median)",
}

#: the one :func:`estimate_noise_level` uses: the smallest mean error of the three on clean, noisy and
#: JPEG photographs (docs/real_photographs.md, "Noise level"; the patch estimator is better on colour
#: photographs with white noise and fails on JPEG noise and on structured gray images)
DEFAULT_ESTIMATOR: NoiseEstimator = "wavelet"


def estimator_for(mask: Optional[torch.Tensor] = None, estimator: Optional[NoiseEstimator] = None) -> str:
    """The name of the estimator :func:`estimate_noise_level` runs for these arguments."""
    if estimator is None:
        return "haar-mad" if mask is not None and DEFAULT_ESTIMATOR == "wavelet" else DEFAULT_ESTIMATOR
    return choose(estimator, NoiseEstimator, "noise estimator")


def estimate_noise_level(y: torch.Tensor, mask: Optional[torch.Tensor] = None,
                         estimator: Optional[NoiseEstimator] = None) -> float:
    """nu of ``y`` ([0, 1] units) by ``estimator`` (None: :data:`DEFAULT_ESTIMATOR`; the measured
    errors of all three are in docs/real_photographs.md). ``mask``: (1, 1, H, W) 0/1, 1 = observed
    (inpainting); the ``wavelet`` estimator takes none, so with a mask the default is ``haar-mad``, the
    same median rule on the same Haar diagonal coefficients, over fully observed 2x2 blocks only."""
    return ESTIMATORS[estimator_for(mask, estimator)](y, mask)
