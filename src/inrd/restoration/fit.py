"""Does a restoration fit its observation? A check a user can trust without the ground truth.

For ``y = A v + w``, ``w ~ N(0, nu^2 Id)`` with m observed values, the truth leaves the residual
``||A v - y||^2 / nu^2 ~ chi^2(m)``: the **normalised residual** ``r = ||A x - y|| / (nu sqrt(m))`` is
``1 +- 1 / sqrt(2 m)`` at x = v (0.044 for a 16x16 observation, less for any larger one). An estimate
fitted to y absorbs part of the noise (r below 1 by its effective degrees of freedom). With the right A
and nu, 105 runs (5 photographs, 64 px, 4 tasks, nu 0.005-0.2, every algorithm) measured r = 0.62-1.09
for HQS, 0.65-0.98 for the posterior sampler, 0.77-0.82 for GS-PnP and 1.13-1.27 for raw PnP-PGD. Far
outside that, the model does not describe y: r >> 1 when nu is too low or A is not the operator that made
y (deblurring with nu / 3: r = 1.8-2.2, nu / 10: 3.5-8.5), r << 1 when nu is too high and the result is
over-smoothed (3 nu: r = 0.37-0.41, 10 nu: 0.14-0.18). Hence the accepted band :data:`RESIDUAL_RANGE` =
[0.5, 1.5]: more than ten chi-square standard deviations from 1 for m >= 256, around every good run
measured, and excluding every deblurring run with nu wrong by a factor of 3 or more (denoising with nu / 10
returned about y itself on one image, r = 0.59: missed). The measurements: docs/restoration_notes.md.

Second, an image lies in [0, 1]: an unclamped estimate with many values beyond the range by more than the
noise can explain (3 nu) is not an image of the scene. Measured: at most 0.24 % of the values on the good
runs (bright skies at nu = 0.005), 15-34 % when the kernel given is twice as wide as the real blur (which r
misses: 1.02-1.34) and 39-45 % with nu / 10; the limit :data:`OUT_OF_RANGE_MAX` is 1 %. The share outside
[0, 1] itself (what saving the PNG clips) is reported as ``clipped``; it reaches 8.3 % on good runs
(values within the noise of a saturated region) and so does not decide.

What the check cannot see: a kernel narrower than the real blur fits y about as well as the right one
(under-deblurred, r = 0.90-0.96, nothing out of range); such a result is reported as trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

__all__ = ["Fit", "check_fit", "RESIDUAL_RANGE", "OUT_OF_RANGE_MAX", "OUT_OF_RANGE_NU"]

#: the normalised residuals ||A x - y|| / (nu sqrt(m)) a trusted result lies within (see the module)
RESIDUAL_RANGE = (0.5, 1.5)
#: the largest share of estimate values beyond [-OUT_OF_RANGE_NU nu, 1 + OUT_OF_RANGE_NU nu] a trusted result has
OUT_OF_RANGE_MAX = 0.01
OUT_OF_RANGE_NU = 3.0


@dataclass(frozen=True)
class Fit:
    """How a restoration ``x`` fits its observation (module docstring): ``residual`` the normalised residual,
    ``observed_values`` m, ``clipped`` the share of x's values outside [0, 1], ``out_of_range`` the share beyond
    [-3 nu, 1 + 3 nu], ``trusted`` whether both are within their limits, ``warning`` why not (one line)."""

    residual: float
    observed_values: int
    clipped: float
    out_of_range: float
    trusted: bool
    warning: Optional[str]

    def record(self) -> dict:
        return {"residual": self.residual, "residual_range": list(RESIDUAL_RANGE), "observed_values": self.observed_values,
                "clipped": self.clipped, "out_of_range": self.out_of_range, "out_of_range_max": OUT_OF_RANGE_MAX,
                "out_of_range_nu": OUT_OF_RANGE_NU, "trusted": self.trusted, "warning": self.warning}


def check_fit(physics, x: torch.Tensor, y: torch.Tensor, nu: float, view: Optional[torch.Tensor] = None) -> Fit:
    """The :class:`Fit` of the unclamped estimate ``x`` (the algorithm's unknown) to ``y``; ``view``: the part of x
    that is the picture (default x; for ``Blur(boundary="valid")`` its crop). Only observed values count: an
    operator with a ``mask`` (inpainting) observes the mask's pixels."""
    with torch.no_grad():
        r = (physics.A(x.to(y.dtype)) - y).double()
        mask = getattr(physics, "mask", None)
        if mask is not None:
            m_full = mask.to(r.device, r.dtype).expand_as(r)
            r, m = r * m_full, int(m_full.sum())
        else:
            m = r.numel()
        residual = float(r.norm()) / (nu * math.sqrt(max(m, 1)))
        v = (x if view is None else view).double()
        clipped = float(((v < 0) | (v > 1)).double().mean())
        margin = OUT_OF_RANGE_NU * nu
        out = float(((v < -margin) | (v > 1 + margin)).double().mean())
    problems = []
    lo, hi = RESIDUAL_RANGE
    if residual > hi:
        problems.append(f"the residual ||A x - y|| is {residual:.3g} times what nu = {nu:.4g} predicts (a fit: {lo:g}-{hi:g}): "
                        f"nu is too low, or the operator (kernel, mask, factor) is not the one that made the observation")
    elif residual < lo:
        problems.append(f"the residual ||A x - y|| is only {residual:.3g} times what nu = {nu:.4g} predicts (a fit: {lo:g}-{hi:g}): "
                        f"nu is too high (the result is over-smoothed) or the result keeps the noise")
    if out > OUT_OF_RANGE_MAX:
        problems.append(f"{out:.1%} of its values lie beyond [0, 1] by more than {OUT_OF_RANGE_NU:g} nu (a trusted result: "
                        f"<= {OUT_OF_RANGE_MAX:.0%}): the kernel may be wider than the real blur, or nu too low")
    warning = None
    if problems:
        warning = "the result does not fit the observation: " + "; ".join(problems) + "; check --noise-level and the operator."
    return Fit(residual, m, clipped, out, not problems, warning)
