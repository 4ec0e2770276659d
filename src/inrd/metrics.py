"""Image quality and stability metrics. Images are (B, C, H, W) tensors in [0, 1]; this module
imports nothing else from inrd.
"""

from __future__ import annotations

import torch

__all__ = ["psnr", "ssim"]


def psnr(x: torch.Tensor, y: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio ``10 log10(max_val^2 / mean((x - y)^2))`` per image, in dB.

    ``x`` and ``y`` are (B, C, H, W) (or (C, H, W), read as one image) with equal shapes; the mean runs
    over C, H, W and is computed in float64. No clipping: clip to [0, 1] first if the convention needs
    it. Returns a float64 (B,) tensor; identical images give ``inf``.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("psnr takes two torch tensors (B, C, H, W).")
    if x.shape != y.shape:
        raise ValueError(f"psnr needs images of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}.")
    if x.ndim == 3:
        x, y = x[None], y[None]
    if x.ndim != 4:
        raise ValueError(f"psnr takes (B, C, H, W) or (C, H, W) images, got shape {tuple(x.shape)}.")
    if not max_val > 0:
        raise ValueError(f"max_val must be > 0 (the peak value of the image range), got {max_val}.")
    d = x.detach().to(torch.float64) - y.detach().to(device=x.device, dtype=torch.float64)
    mse = d.pow(2).flatten(1).mean(1)
    return 10 * torch.log10(max_val**2 / mse)


def ssim(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Structural similarity (Wang et al. 2004, scikit-image's ``structural_similarity`` with its default
    7 x 7 window, ``data_range`` 1) of the first image of ``x``, clipped to [0, 1], against the first of
    ``ref``; colour channels averaged. scikit-image is imported on the first call."""
    from skimage.metrics import structural_similarity

    a = x[0].detach().double().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    b = ref[0].detach().double().permute(1, 2, 0).cpu().numpy()
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=2))


# --------------------------------------------------------------------------------------------------
# Distribution distances between sets of images: multi-scale patch sliced-Wasserstein distance, and
# the nearest-neighbour distance to training data (a memorisation check).
# --------------------------------------------------------------------------------------------------

__all__ += ["patch_swd", "swd_directions", "wasserstein2_1d", "nearest_crop_distance"]


def swd_directions(dim: int, projections: int, seed: int = 0) -> torch.Tensor:
    """``projections`` random unit vectors of R^dim (uniform on the sphere), float64 (dim, projections),
    drawn from ``torch.Generator().manual_seed(seed)``: the same directions for every call."""
    g = torch.Generator().manual_seed(int(seed))
    v = torch.randn(dim, projections, generator=g, dtype=torch.float64)
    return v / v.norm(dim=0, keepdim=True)


def wasserstein2_1d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact W2 between the empirical laws of the columns of ``a`` (n, K) and ``b`` (m, K), float64 (K,).

    ``W2^2 = int_0^1 (Q_a(u) - Q_b(u))^2 du`` with Q the empirical quantile functions (step functions
    jumping at i/n and j/m); the integral is summed exactly over the merged breakpoints, so n != m is
    allowed.
    """
    n, m = a.shape[0], b.shape[0]
    # sort each projection as a contiguous row (sorting along dim 0 of an (n, K) tensor is ~10x slower)
    sa = torch.sort(a.to(torch.float64).T.contiguous(), dim=1).values.T
    sb = torch.sort(b.to(torch.float64).T.contiguous(), dim=1).values.T
    if n == m:
        return (sa - sb).pow(2).mean(0).sqrt()
    u = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n, torch.arange(1, m + 1, dtype=torch.float64) / m])
    u = torch.unique(torch.cat([torch.zeros(1, dtype=torch.float64), u]))  # sorted breakpoints 0 .. 1
    width, mid = u[1:] - u[:-1], (u[1:] + u[:-1]) / 2
    ia = torch.clamp((mid * n).long(), max=n - 1)
    ib = torch.clamp((mid * m).long(), max=m - 1)
    return ((sa[ia] - sb[ib]).pow(2) * width[:, None]).sum(0).sqrt()


def _patches(x: torch.Tensor, patch: int, limit: int | None, g: torch.Generator) -> torch.Tensor:
    p = torch.nn.functional.unfold(x.to(torch.float64), patch)  # (N, C*patch^2, L)
    p = p.transpose(1, 2).reshape(-1, p.shape[1])
    if limit is not None and p.shape[0] > limit:
        p = p[torch.randperm(p.shape[0], generator=g)[:limit]]
    return p


def patch_swd(
    x: torch.Tensor,
    y: torch.Tensor,
    patch: int = 7,
    scales: int = 3,
    projections: int = 512,
    max_patches: int | None = 65536,
    seed: int = 0,
) -> dict:
    """Multi-scale patch sliced-Wasserstein distance between two sets of images (in image units).

    For each scale ``s = 0..scales-1`` both sets are averaged over 2^s x 2^s blocks (scales 1, 1/2,
    1/4, ...), every ``patch x patch`` patch of every image is a point of R^d (d = C patch^2), and

        SW2_s = ( mean_k W2( <theta_k, P_x>, <theta_k, P_y> )^2 )^(1/2)

    over ``projections`` seeded random unit directions ``theta_k`` (:func:`swd_directions`, the same
    for x and y), W2 the exact 1-D Wasserstein-2 distance (:func:`wasserstein2_1d`). No per-patch
    normalisation: grey-level differences count. ``swd`` is the mean of the per-scale values.

    Units: image units. A uniform grey-level shift ``y = x + mu`` gives exactly
    ``SW2 = |mu| sqrt(mean_k <theta_k, 1>^2)``, whose expectation over directions is ``|mu|``
    (``E <theta, 1>^2 = |1|^2 / d = 1`` for theta uniform on the sphere).

    Patches: when a set has more than ``max_patches`` patches at a scale, a seeded random subset of
    that many is used (None: all). Sets of different sizes are allowed.
    Returns ``{"swd": float, "per_scale": [float, ...], "patches": [(n_x, n_y), ...]}``.
    """
    for name, v in (("x", x), ("y", y)):
        if not isinstance(v, torch.Tensor) or v.ndim != 4:
            raise ValueError(f"patch_swd: {name} must be a (N, C, H, W) tensor of images.")
        if not torch.isfinite(v).all():
            raise ValueError(f"patch_swd: {name} contains NaN or infinite values.")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"patch_swd: x has {x.shape[1]} channels, y has {y.shape[1]}; compare images of the same kind.")
    if patch < 1 or scales < 1 or projections < 1:
        raise ValueError("patch_swd: patch, scales and projections must be >= 1.")
    smallest = min(x.shape[-2:] + y.shape[-2:])
    if smallest // 2 ** (scales - 1) < patch:
        raise ValueError(
            f"patch_swd: images of {smallest} px are too small for {patch}x{patch} patches at scale 1/{2 ** (scales - 1)}; "
            f"use fewer scales or smaller patches."
        )
    g = torch.Generator().manual_seed(int(seed) + 1)
    dirs = swd_directions(x.shape[1] * patch * patch, projections, seed)
    per_scale, counts = [], []
    for s in range(scales):
        xs = torch.nn.functional.avg_pool2d(x.detach().cpu().double(), 2**s) if s else x.detach().cpu().double()
        ys = torch.nn.functional.avg_pool2d(y.detach().cpu().double(), 2**s) if s else y.detach().cpu().double()
        px, py = _patches(xs, patch, max_patches, g), _patches(ys, patch, max_patches, g)
        w = wasserstein2_1d(px @ dirs, py @ dirs)
        per_scale.append(float(w.pow(2).mean().sqrt()))
        counts.append((px.shape[0], py.shape[0]))
    return {"swd": sum(per_scale) / len(per_scale), "per_scale": per_scale, "patches": counts}


def nearest_crop_distance(x: torch.Tensor, images: torch.Tensor, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance of each image of ``x`` (B, C, h, w) to its nearest crop among all h x w crops (every
    position, stride 1) of the larger ``images`` (K, C, H, W): the memorisation check.

    Distance = RMS pixel difference ``sqrt(mean((x_i - crop)^2))`` in image units; computed exactly in
    float64 with ``|x|^2 + |crop|^2 - 2 <x, crop>`` (cross-correlations by conv2d). Returns
    ``(distances (B,), where (B, 3) = (image index, row, column) of the nearest crop)``.
    """
    if x.ndim != 4 or images.ndim != 4 or x.shape[1] != images.shape[1]:
        raise ValueError(
            f"nearest_crop_distance: need x (B, C, h, w) and images (K, C, H, W) with the same C, got {tuple(x.shape)} and {tuple(images.shape)}."
        )
    B, C, h, w = x.shape
    if h > images.shape[-2] or w > images.shape[-1]:
        raise ValueError(f"nearest_crop_distance: {h}x{w} images do not fit in {tuple(images.shape[-2:])} training images.")
    xd, imd = x.detach().cpu().double(), images.detach().cpu().double()
    ones = torch.ones(1, C, h, w, dtype=torch.float64)
    best = torch.full((B,), float("inf"), dtype=torch.float64)
    where = torch.zeros(B, 3, dtype=torch.long)
    xsq = xd.pow(2).flatten(1).sum(1)
    for k in range(imd.shape[0]):
        im = imd[k : k + 1]
        csq = torch.nn.functional.conv2d(im.pow(2), ones)[0, 0]  # |crop|^2 at every position
        W2 = csq.shape[1]
        for i in range(0, B, chunk):
            cross = torch.nn.functional.conv2d(im, xd[i : i + chunk])[0]  # (b, H', W')
            d2 = (xsq[i : i + chunk, None, None] + csq[None] - 2 * cross).flatten(1)
            v, j = d2.min(1)
            better = v < best[i : i + chunk]
            idx = torch.arange(i, i + v.numel())[better]
            best[idx] = v[better]
            where[idx] = torch.stack([torch.full_like(j[better], k), j[better] // W2, j[better] % W2], 1)
    return (best.clamp(min=0) / (C * h * w)).sqrt(), where


# --------------------------------------------------------------------------------------------------
# Two views independent of patch-SWD: the radial power spectrum (is texture detail at the right
# scales?) and the pixel marginal (are grey levels and contrast right?).
# --------------------------------------------------------------------------------------------------

__all__ += ["radial_power_spectrum", "spectrum_distance", "wasserstein1_1d", "pixel_w1"]


def radial_power_spectrum(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean radial power spectrum of a set of images ``x`` (N, C, H, W): ``(radius, power)``, float64.

    Each image is made zero-mean, ``P(k) = |DFT(x)(k)|^2 / (H W)`` is averaged over images and channels,
    and then over the frequencies ``k = (k_y, k_x)`` (cycles per image) whose radius ``|k|`` rounds to
    ``r = 1 .. min(H, W) // 2`` (the DC term r = 0 is dropped: it only holds the mean). With this
    normalisation white noise of variance s^2 has ``E P(k) = s^2`` at every k != 0 (Parseval), a flat
    spectrum. No window: the DFT treats the image as periodic, the same for every set compared.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError("radial_power_spectrum: x must be a (N, C, H, W) tensor of images.")
    H, W = x.shape[-2:]
    if min(H, W) < 4:
        raise ValueError(f"radial_power_spectrum: images of {H}x{W} px are too small (need >= 4x4).")
    xd = x.detach().cpu().double()
    xd = xd - xd.mean((-2, -1), keepdim=True)
    p = torch.fft.fft2(xd).abs().pow(2).mean((0, 1)) / (H * W)  # (H, W)
    ky = torch.fft.fftfreq(H, dtype=torch.float64)[:, None] * H
    kx = torch.fft.fftfreq(W, dtype=torch.float64)[None, :] * W
    r = torch.sqrt(ky**2 + kx**2).round().long()
    radius = torch.arange(1, min(H, W) // 2 + 1)
    power = torch.stack([p[r == k].mean() for k in radius])
    return radius.double(), power


def spectrum_distance(x: torch.Tensor, y: torch.Tensor, bands: int = 3) -> dict:
    """Distance between the radial power spectra of two sets of images (:func:`radial_power_spectrum`).

    ``distance`` = RMS over radii of ``log10 P_x(r) - log10 P_y(r)`` (0.1 = 26% too much or too little
    power on average); ``band_log_ratio`` = the mean of that difference over ``bands`` equal ranges of
    radii, low to high frequency (negative: x lacks power there). Units: decades of power.
    """
    for name, v in (("x", x), ("y", y)):
        if not isinstance(v, torch.Tensor) or v.ndim != 4:
            raise ValueError(f"spectrum_distance: {name} must be a (N, C, H, W) tensor of images.")
        if not torch.isfinite(v).all():
            raise ValueError(f"spectrum_distance: {name} contains NaN or infinite values.")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"spectrum_distance: images of shape {tuple(x.shape[1:])} and {tuple(y.shape[1:])}; compare same-size images.")
    _, px = radial_power_spectrum(x)
    _, py = radial_power_spectrum(y)
    tiny = torch.finfo(torch.float64).tiny  # a constant image has zero power: keep the log finite
    d = torch.log10(px.clamp(min=tiny)) - torch.log10(py.clamp(min=tiny))
    return {
        "distance": float(d.pow(2).mean().sqrt()),
        "band_log_ratio": [float(b.mean()) for b in torch.tensor_split(d, bands)],
        "log10_power_x": torch.log10(px.clamp(min=tiny)).tolist(),
        "log10_power_y": torch.log10(py.clamp(min=tiny)).tolist(),
    }


def wasserstein1_1d(a: torch.Tensor, b: torch.Tensor) -> float:
    """Exact W1 between the empirical laws of the 1-D samples ``a`` (n,) and ``b`` (m,), float64:
    ``int_0^1 |Q_a(u) - Q_b(u)| du`` summed over the merged quantile breakpoints (n != m allowed)."""
    sa = torch.sort(a.detach().cpu().double().flatten()).values
    sb = torch.sort(b.detach().cpu().double().flatten()).values
    n, m = sa.numel(), sb.numel()
    if n == 0 or m == 0:
        raise ValueError("wasserstein1_1d needs non-empty samples.")
    if n == m:
        return float((sa - sb).abs().mean())
    u = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n, torch.arange(1, m + 1, dtype=torch.float64) / m])
    u = torch.unique(torch.cat([torch.zeros(1, dtype=torch.float64), u]))
    width, mid = u[1:] - u[:-1], (u[1:] + u[:-1]) / 2
    ia = torch.clamp((mid * n).long(), max=n - 1)
    ib = torch.clamp((mid * m).long(), max=m - 1)
    return float(((sa[ia] - sb[ib]).abs() * width).sum())


def pixel_w1(x: torch.Tensor, y: torch.Tensor) -> float:
    """W1 distance between the pixel-value marginals of two sets of images (all pixels of all images
    pooled), in image units: a uniform grey-level shift ``y = x + c`` gives exactly ``|c|``."""
    for name, v in (("x", x), ("y", y)):
        if not isinstance(v, torch.Tensor) or v.ndim != 4:
            raise ValueError(f"pixel_w1: {name} must be a (N, C, H, W) tensor of images.")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"pixel_w1: x has {x.shape[1]} channels, y has {y.shape[1]}; compare images of the same kind.")
    return wasserstein1_1d(x, y)
