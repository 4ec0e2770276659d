"""Which texture is a sample? Mode coverage of inrd-small, a view that patch statistics cannot give.

inrd-small learns three textures (``inrd.textures.TEXTURES``). A sampler can match the pooled patch law
(patch-SWD), the spectrum and the pixel marginal while producing one texture too often, or blends of
two. A linear (multinomial logistic) classifier on a handful of per-image statistics tells them apart:

* features (:func:`texture_features`): log10 radial power in each integer radius ``r = 1..H/2``, pixel
  mean and std, mean absolute horizontal and vertical differences and the log of their ratio (the
  bricks' orientation), and the 10 / 50 / 90 % pixel quantiles; standardised with the training crops'
  mean and std;
* fitted (:func:`fit_texture_classifier`) by L-BFGS in float64 on seeded random crops of the training
  region, with a small ridge penalty so that the fit is unique; deterministic;
* its accuracy on the held-out regions and its limits are measured in ``docs/quality.md``
  ("Metrics, and their floor").

:func:`texture_coverage` then reports, for a set of samples, the share assigned to each texture
(1/3 each for the data) and the share of *ambiguous* samples (top probability below ``confident``):
blends of two textures. It undercounts: a linear classifier is confident on some blends (brick with
gravel) and on images unlike any texture, and it calls smooth images one texture, so the largest
share gap is to be read beside the ambiguous share.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..textures import TEXTURES, random_crops, region

__all__ = ["TextureClassifier", "texture_features", "fit_texture_classifier", "texture_coverage"]

_QUANTILES = (0.1, 0.5, 0.9)


def texture_features(x: torch.Tensor) -> torch.Tensor:
    """Per-image statistics of grey images ``x`` (N, 1, H, W) in [0, 1] (clamped first): (N, H/2 + 8), float64."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"texture_features: need grey images (N, 1, H, W), got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}.")
    if not torch.isfinite(x).all():
        raise ValueError("texture_features: the images contain NaN or infinite values.")
    v = x.detach().cpu().double().clamp(0, 1)[:, 0]
    H, W = v.shape[-2:]
    p = torch.fft.fft2(v - v.mean((-2, -1), keepdim=True)).abs().pow(2) / (H * W)
    r = torch.sqrt((torch.fft.fftfreq(H, dtype=torch.float64)[:, None] * H) ** 2
                   + (torch.fft.fftfreq(W, dtype=torch.float64)[None, :] * W) ** 2).round().long()
    tiny = torch.finfo(torch.float64).tiny  # a flat image has no power: keep the log finite
    radial = torch.stack([p[:, r == k].mean(1) for k in range(1, min(H, W) // 2 + 1)], 1).clamp(min=tiny).log10()
    dx = (v[:, :, 1:] - v[:, :, :-1]).abs().mean((1, 2))
    dy = (v[:, 1:] - v[:, :-1]).abs().mean((1, 2))
    q = torch.quantile(v.flatten(1), torch.tensor(_QUANTILES, dtype=torch.float64), dim=1).T
    eps = 1e-12
    return torch.cat([radial, v.mean((1, 2))[:, None], v.std((1, 2))[:, None], dx[:, None], dy[:, None],
                      torch.log((dx + eps) / (dy + eps))[:, None], q], 1)


@dataclass(frozen=True)
class TextureClassifier:
    """Multinomial logistic regression on standardised :func:`texture_features`."""

    names: tuple[str, ...]
    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K) class probabilities of the images ``x`` (N, 1, H, W), float64."""
        f = texture_features(x)
        if f.shape[1] != self.mean.numel():
            size = 2 * (self.mean.numel() - 8)  # the features of an s x s image: s / 2 radii and 8 statistics
            raise ValueError(f"the texture classifier was fitted on {size}x{size} crops; got images of {tuple(x.shape[-2:])}, use that size.")
        return torch.softmax(((f - self.mean) / self.std) @ self.weight + self.bias, 1)


def fit_texture_classifier(n: int = 6000, size: int = 32, seed: int = 0, ridge: float = 1e-3) -> TextureClassifier:
    """Fit the classifier on ``n`` seeded random ``size``-pixel crops of the training region."""
    crops, label = random_crops(region("train"), n, size, torch.Generator().manual_seed(seed), return_index=True)
    f = texture_features(crops)
    mean, std = f.mean(0), f.std(0)
    z = (f - mean) / std
    weight = torch.zeros(z.shape[1], len(TEXTURES), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(TEXTURES), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        value = torch.nn.functional.cross_entropy(z @ weight + bias, label) + ridge * weight.pow(2).sum()
        value.backward()
        return value

    with torch.enable_grad():
        opt.step(loss)
    return TextureClassifier(tuple(TEXTURES), mean, std, weight.detach(), bias.detach())


def texture_coverage(x: torch.Tensor, classifier: TextureClassifier, confident: float = 0.9) -> dict:
    """Mode coverage of the images ``x``: ``shares`` (texture name -> share of images assigned to it),
    ``ambiguous`` (share whose top probability is below ``confident``) and ``max_share_gap`` (the largest
    ``|share - 1/K|``; the data's textures are equally likely)."""
    if not 0 < confident < 1:
        raise ValueError(f"confident must be a probability in (0, 1), got {confident}.")
    p = classifier.probabilities(x)
    top, label = p.max(1)
    shares = torch.bincount(label, minlength=len(classifier.names)).double() / len(label)
    return {
        "shares": {name: float(s) for name, s in zip(classifier.names, shares)},
        "ambiguous": float((top < confident).double().mean()),
        "max_share_gap": float((shares - 1 / len(classifier.names)).abs().max()),
    }
