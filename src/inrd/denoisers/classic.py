"""Classical denoisers with the ``D(x, sigma)`` contract: total variation and BM3D.

* ``TVDenoiser``: ``TVD_lambda(u) = argmin_v 1/2 ||u - v||^2 + lambda TV(v)`` with ``lambda = c sigma``
  (the paper, Sec. 3.2, uses ``c = 1``: "(abusively) set to lambda = sigma"). TV is the isotropic total
  variation of each channel, forward differences with Neumann boundary, as deepinv's ``TVDenoiser``
  (which the paper used). Unlike deepinv's, which warm-starts every call from the previous call's
  variables, this solver is a pure function of its inputs: no state survives a call.
* ``BM3DDenoiser``: the ``bm3d`` package (Makinen, Azzari, Foi), CBM3D in an opponent colour space for
  RGB images. CPU only, no gradient. ``bm3d`` is free for non-commercial use only, so it is the
  optional extra ``inrd[bm3d]``, imported when a BM3DDenoiser is built.

Images (B, C, H, W) in [0, 1]; sigma a float or a (B,) tensor, the std of the noise in the same units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from deepinv.models import Denoiser

from ..validate import check_image, sigma_vector
from .base import SamplingDefaults

__all__ = ["TVDenoiser", "BM3DDenoiser", "tv_denoise", "TVInfo", "build_tv", "build_bm3d"]


# ---------------------------------------------------------------------------------------------------
# Total variation
# ---------------------------------------------------------------------------------------------------


def _grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along H and W, zero on the last row / column (Neumann boundary)."""
    gh = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    gw = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    return gh, gw


def _grad_adjoint(ph: torch.Tensor, pw: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`_grad` (= minus the divergence) for fields that vanish on the last row / column."""
    return F.pad(ph[..., :-1, :], (0, 0, 1, 0)) - ph + F.pad(pw[..., :, :-1], (1, 0, 0, 0)) - pw


@dataclass
class TVInfo:
    """Per-sample diagnostics of :func:`tv_denoise` (each a (B,) tensor).

    ``rmse_bound`` is ``sqrt(2 gap / N)``, N = C*H*W: since the primal objective is 1-strongly convex,
    ``1/2 ||v - v*||^2 <= gap``, so it bounds the root-mean-square distance to the exact minimiser.
    """

    iterations: torch.Tensor
    gap: torch.Tensor
    rmse_bound: torch.Tensor
    converged: torch.Tensor


def tv_denoise(
    y: torch.Tensor, lam, iters: int = 300, tol: float = 1e-3, check_every: int = 10
) -> tuple[torch.Tensor, TVInfo]:
    """Solve ``argmin_v 1/2 ||y - v||^2 + lam TV(v)`` per image by FISTA on the dual (Beck & Teboulle 2009).

    Dual problem: ``min_{|p_i| <= lam} 1/2 ||y - D^T p||^2`` (|p_i| the Euclidean norm of the 2-vector
    of pixel i and channel c), primal ``v = y - D^T p``; gradient step ``1/8`` since ``||D||^2 <= 8``.
    Every ``check_every`` iterations the duality gap ``lam TV(v) - <D v, p>`` (>= 0) of each image is
    computed; an image stops (its variables freeze) once ``sqrt(2 gap / N) <= tol``, so its result does
    not depend on the other images of the batch. ``lam`` is a float or a (B,) tensor (>= 0).
    """
    if iters < 1 or check_every < 1 or not tol > 0:
        raise ValueError(f"need iters >= 1, check_every >= 1 and tol > 0, got {iters}, {check_every}, {tol}.")
    B = y.shape[0]
    n = y[0].numel()
    lam = sigma_vector(lam, y).reshape(B, 1, 1, 1)
    ph, pw = torch.zeros_like(y), torch.zeros_like(y)  # dual variable p
    qh, qw = ph, pw  # extrapolated point (FISTA)
    t = 1.0
    active = (lam > 0).reshape(B).cpu()  # lam = 0: v = y exactly, nothing to iterate
    iterations = torch.zeros(B, dtype=torch.long)
    gap = torch.where(active, torch.inf, 0.0).to(torch.float64)
    inv_lam = 1 / lam.clamp(min=torch.finfo(y.dtype).tiny)

    def duality_gap(ph, pw):
        gh, gw = _grad(y - _grad_adjoint(ph, pw))
        gh, gw = gh.double(), gw.double()
        g = lam.double() * torch.sqrt(gh**2 + gw**2) - (gh * ph.double() + gw * pw.double())
        return g.sum(dim=(1, 2, 3)).clamp(min=0).cpu()

    for k in range(1, iters + 1):
        if not active.any():
            break
        # projected gradient step on the dual at the extrapolated point q
        gh, gw = _grad(y - _grad_adjoint(qh, qw))
        nh, nw = qh + gh / 8, qw + gw / 8
        scale = torch.clamp(torch.sqrt(nh * nh + nw * nw) * inv_lam, min=1.0)  # projection onto |p_i| <= lam
        nh, nw = nh / scale, nw / scale
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        beta = (t - 1) / t_next
        if active.all():
            qh, qw = nh + beta * (nh - ph), nw + beta * (nw - pw)
            ph, pw = nh, nw
        else:  # converged images keep their variables
            m = active.to(y.device).reshape(B, 1, 1, 1)
            qh, qw = torch.where(m, nh + beta * (nh - ph), qh), torch.where(m, nw + beta * (nw - pw), qw)
            ph, pw = torch.where(m, nh, ph), torch.where(m, nw, pw)
        t = t_next
        iterations += active.long()
        if k % check_every == 0 or k == iters:
            gap = torch.where(active, duality_gap(ph, pw), gap)
            active = active & (torch.sqrt(2 * gap / n) > tol)
    v = y - _grad_adjoint(ph, pw)
    bound = torch.sqrt(2 * gap / n)
    return v, TVInfo(iterations=iterations, gap=gap, rmse_bound=bound, converged=bound <= tol)


class TVDenoiser(Denoiser):
    """``D(x, sigma) = TVD_{c sigma}(x)`` (paper Sec. 3.2, c = 1), stateless, batched with per-sample sigma.

    Args:
        c: TV weight per unit of noise, ``lambda = c * sigma`` (paper: c = 1).
        iters: maximum number of dual FISTA iterations per call (an image stops earlier once within ``tol``).
        tol: stop an image once the duality gap certifies ``RMSE(v, v*) <= tol`` ([0, 1] units; 1e-3 is
            a quarter of an 8-bit grey level).
        check_every: iterations between two duality-gap evaluations.
        channels: if given, the number of channels the input must have (TV itself works for any).
    """

    # TV is model-based: any noise level is legitimate (the DDPM schedule starts near 80).
    sigma_range = (0.0, math.inf)
    # INRD-TV (paper Fig. 3, row 3): canonical relaxation from the constant 0.5 on a geometric schedule
    # reaching sigma = 1. On the DDPM range TV cannot remove sigma ~ 78 noise (values leave [0, 1] by
    # tens); on [0.002, 0.2] the samples collapse to the mean. Same setting as `inrd reproduce fig3`.
    sampling_defaults = SamplingDefaults(
        rho="canonical", schedule="geometric", steps=100, sigma_min=0.002, sigma_max=1.0, init=0.5, init_std=0.0,
        channels=3, size=64,
    )

    def __init__(self, c: float = 1.0, iters: int = 300, tol: float = 1e-3, check_every: int = 10, channels: int | None = None):
        super().__init__()
        if not (c >= 0 and math.isfinite(c)):
            raise ValueError(f"the TV weight factor c (lambda = c sigma) must be finite and >= 0, got {c}.")
        if iters < 1 or check_every < 1 or not tol > 0:
            raise ValueError(f"need iters >= 1, check_every >= 1 and tol > 0, got {iters}, {check_every}, {tol}.")
        self.c, self.iters, self.tol, self.check_every, self.channels = float(c), int(iters), float(tol), int(check_every), channels

    def solve(self, x: torch.Tensor, sigma) -> tuple[torch.Tensor, TVInfo]:
        """The denoised image and the solver's per-sample diagnostics (:class:`TVInfo`)."""
        check_image(x, "x", channels=self.channels)
        lam = self.c * sigma_vector(sigma, x)
        return tv_denoise(x, lam, self.iters, self.tol, self.check_every)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self.solve(x, sigma)[0]


def build_tv(weights=None, device=None, c: float = 1.0, iters: int = 300, tol: float = 1e-3, check_every: int = 10, channels=None, **options):
    """Registry builder: ``inrd.denoisers.load("tv", c=1.0, iters=300, tol=1e-3)``."""
    if weights is not None:
        raise ValueError("the TV denoiser has no weights; drop weights=.")
    if options:
        raise ValueError(f"unknown TV option(s) {', '.join(sorted(options))}; known: c, iters, tol, check_every, channels.")
    model = TVDenoiser(c=c, iters=iters, tol=tol, check_every=check_every, channels=channels)
    if channels is not None:
        model.sampling_defaults = TVDenoiser.sampling_defaults.with_(channels=int(channels))
    return model.to(device) if device is not None else model


# ---------------------------------------------------------------------------------------------------
# BM3D
# ---------------------------------------------------------------------------------------------------


BM3D_MISSING = "BM3D needs the optional non-commercial package `bm3d`: pip install 'inrd[bm3d]'"


def _import_bm3d():
    """The ``bm3d`` module (imported on first use: it is an optional extra with a non-commercial licence)."""
    try:
        import bm3d
    except ImportError:
        raise ValueError(f"{BM3D_MISSING}.") from None
    return bm3d


#: smallest side the bm3d library takes safely (measured: below 8 it raises, 8x8 segfaults, 9x9 and 8x16 work)
MIN_SIDE = 16


class BM3DDenoiser(Denoiser):
    """``D(x, sigma)``: BM3D from the ``bm3d`` package, image by image on the CPU (no gradient).

    Gray images go to ``bm3d.bm3d``; RGB images to ``bm3d.bm3d_rgb`` (CBM3D: block matching on the
    luminance of an opponent colour transform, the standard colour BM3D). deepinv's ``BM3D`` instead
    passes RGB arrays to ``bm3d.bm3d``, which matches blocks on the red channel only. ``sigma = 0``
    returns the input unchanged (there is no noise to remove). The ``bm3d`` library is not bitwise
    reproducible: two identical calls may differ by ~1e-4 on a few pixels.

    Args:
        channels: 1 or 3 to require that many channels; None accepts either.
        profile: BM3D profile ("np" normal, "refilter", "vn", "high", ...).
        colorspace: colour transform of CBM3D, "opp" (opponent) or "YCbCr".
    """

    sigma_range = (0.0, math.inf)  # BM3D takes sigma as a parameter; quality degrades gracefully
    # an off-the-shelf denoiser for small noise, sampled as FFDNet is (IND on [0.002, 0.2] from a noisy
    # start, see inrd.denoisers.ffdnet), on fewer and smaller images: one BM3D call costs seconds
    sampling_defaults = SamplingDefaults(
        rho="ind", schedule="geometric", steps=50, sigma_min=0.002, sigma_max=0.2, init=0.5, init_std=0.5,
        channels=3, size=64,
    )

    def __init__(self, channels: int | None = None, profile: str = "np", colorspace: str = "opp"):
        super().__init__()
        if channels not in (None, 1, 3):
            raise ValueError(f"BM3D handles channels=1 (gray) or 3 (RGB), got channels={channels!r}.")
        if colorspace not in ("opp", "YCbCr"):
            raise ValueError(f"colorspace must be 'opp' or 'YCbCr', got {colorspace!r}.")
        self._bm3d = _import_bm3d()
        self.channels, self.profile, self.colorspace = channels, profile, colorspace

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        check_image(x, "x", channels=self.channels)
        if x.shape[1] not in (1, 3):
            raise ValueError(f"BM3D handles 1 (gray) or 3 (RGB) channels, got {x.shape[1]}; convert the image first.")
        s = sigma_vector(sigma, x).double().cpu().numpy()
        out = torch.empty_like(x)
        for i in range(x.shape[0]):
            if s[i] == 0:
                out[i] = x[i]
                continue
            a = x[i].detach().double().cpu().permute(1, 2, 0).numpy()
            h, w = a.shape[:2]
            # the bm3d library fails below 8 pixels a side and crashes the process (segfault) at 8x8: smaller
            # images are mirrored out to MIN_SIDE and cropped back
            a = np.pad(a, ((0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w)), (0, 0)), mode="symmetric")
            if a.shape[2] == 3:
                d = self._bm3d.bm3d_rgb(a, float(s[i]), profile=self.profile, colorspace=self.colorspace)
            else:
                d = self._bm3d.bm3d(a[:, :, 0], float(s[i]), profile=self.profile)[:, :, None]
            out[i] = torch.from_numpy(np.ascontiguousarray(d[:h, :w])).permute(2, 0, 1).to(out)
        return out


def build_bm3d(weights=None, device=None, channels=None, profile: str = "np", colorspace: str = "opp", **options):
    """Registry builder: ``inrd.denoisers.load("bm3d", channels=None|1|3, profile="np")``."""
    if weights is not None:
        raise ValueError("BM3D has no weights; drop weights=.")
    if options:
        raise ValueError(f"unknown BM3D option(s) {', '.join(sorted(options))}; known: channels, profile, colorspace.")
    model = BM3DDenoiser(channels=channels, profile=profile, colorspace=colorspace)
    if channels is not None:
        model.sampling_defaults = BM3DDenoiser.sampling_defaults.with_(channels=int(channels))
    return model
