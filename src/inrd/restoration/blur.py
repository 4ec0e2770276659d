"""Blur of a real photograph: a convolution whose boundary model says what lies outside the field of view.

A photograph is the blur of a scene larger than the picture; it was not blurred periodically.
:class:`Blur` offers the boundary models of deepinv's ``Blur(padding=...)``
(:data:`inrd.choices.Boundary`), with the interface of :class:`~inrd.restoration.physics.PeriodicBlur`
(``A``, exact ``A_adjoint``, ``prox_l2(z, y, gamma)`` with deepinv's ``LinearPhysics.prox_l2``
signature, ``norm(shape)``, ``init(y)``), so it is the ``physics`` of every algorithm of
:mod:`inrd.restoration`:

* ``"valid"`` (the unknown-boundary model, for photographs): the observation y (H, W) is the part of
  ``k * x`` that the kernel computes from pixels of x only, for an unknown image x of
  ``(H + h - 1, W + w - 1)``: the scene in the photograph plus a margin of ``h - 1 - h // 2`` rows
  above, ``h // 2`` below (columns likewise; :attr:`Blur.margin`). The algorithms restore x;
  :meth:`Blur.crop` cuts it back to the photograph's field of view. Nothing is assumed about the
  scene outside y, which is why it fits a photograph: y is what the camera saw, and x is all the
  scene that reached it. This is deepinv's ``Blur(padding="valid")`` (and
  ``scipy.signal.convolve2d(mode="valid")``) taken with x, not y, as the unknown: a deepinv user with a photograph must build the larger x the same way.
* ``"reflect"`` / ``"replicate"``: x and y have the same size; x is extended by mirroring (without
  repeating the edge pixel, as ``torch.nn.functional.pad``) or by repeating the edge pixel, then
  convolved with the valid part kept. The border is a guess about the scene, right only where the
  scene happens to be symmetric or flat there.
* ``"periodic"``: :class:`~inrd.restoration.physics.PeriodicBlur` itself (the border wraps around).

Conventions: the kernel's centre is pixel ``(h // 2, w // 2)`` as in ``PeriodicBlur`` (a centred
Dirac is Id). Every operator is ``crop o C o Z o E`` with ``E`` an extension (mirror, edge or none),
``Z`` a zero-padding to a fast FFT size (factors 2, 3, 5), ``C`` the periodic convolution on that grid
and ``crop`` the part that reads no wrapped or padded pixel, so ``A^T = E^T Z^T C^T crop^T`` is exact:
``<A x, y> = <x, A^T y>`` to float64 rounding.

The data step ``prox_l2(z, y, gamma) = argmin_x ||A x - y||^2 / 2 + ||x - z||^2 / (2 gamma)`` is exact
by FFT for ``"periodic"``; for the others A^T A is not diagonal in any fast basis, and the prox solves

    (I + gamma A^T A) x = z + gamma A^T y        (the normal equation times gamma)

by conjugate gradient (the matrix is symmetric positive definite, its condition number at most
``1 + gamma ||A||^2``), warm-started at ``z`` (in plug-and-play the previous denoised iterate, already
close), stopped when ``||b - M x|| <= tol ||b||`` (relative residual, :data:`CG_TOL`) or after
:data:`CG_MAX_ITER` iterations. The iterations and the final relative residual of the last solve are
in :attr:`Blur.cg_info`. No preconditioner: the exact inverse of the periodic problem, the obvious
candidate, assumes the margin is observed as well as the interior and gave no clear gain per FFT
(measured in docs/real_photographs.md).
"""

from __future__ import annotations

from typing import Optional

import torch

from ..choices import Boundary, choose
from .physics import Downsampling, PeriodicBlur, Task, power_iteration

__all__ = ["Blur", "BlurDownsampling", "CG_TOL", "CG_MAX_ITER"]

#: conjugate-gradient stopping rule of :meth:`Blur.prox_l2`: relative residual and iteration cap
CG_TOL = 1e-4
CG_MAX_ITER = 100


def _extension_index(n: int, before: int, after: int, boundary: str) -> torch.Tensor:
    """Source index of each of the ``before + n + after`` pixels of a 1-D extension."""
    i = torch.arange(-before, n + after)
    if boundary == "replicate":
        return i.clamp(0, n - 1)
    if boundary == "periodic":
        return i % n
    # reflect about the edge pixel (not repeated): ..., 2, 1 | 0, 1, ..., n-1 | n-2, ...
    period = 2 * (n - 1)
    i = i.abs() % period
    return torch.where(i >= n, period - i, i)


def _fast_length(n: int) -> int:
    """The smallest ``m >= n`` whose prime factors are 2, 3 and 5 (fast FFT lengths)."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def _fast_grid(shape) -> tuple[int, int]:
    return _fast_length(int(shape[-2])), _fast_length(int(shape[-1]))


def _pad_to(u: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """u zero-padded at the bottom and right to (H, W)."""
    return torch.nn.functional.pad(u, (0, W - u.shape[-1], 0, H - u.shape[-2]))


class Blur:
    """Convolution ``A x`` with kernel ``kernel`` under the boundary model ``boundary`` (see the module).

    Args:
        kernel: (h, w) shared by all channels or (C, h, w), finite, not all zero; a tensor, an array,
            ``"gaussian:STD"`` or a kernel file (:func:`~inrd.restoration.physics.load_kernel`).
        boundary: ``"valid"`` (default: the unknown boundary of a photograph), ``"reflect"``,
            ``"replicate"`` or ``"periodic"``.
        tol, max_iter: conjugate-gradient stopping rule of :meth:`prox_l2` (relative residual, cap).

    Shapes: ``A`` maps (B, C, H', W') to (B, C, H, W) with ``(H', W') = (H + h - 1, W + w - 1)`` for
    ``"valid"`` and ``(H, W)`` otherwise; :meth:`image_shape` gives x's size for an observation's.
    """

    task: Task = "deblur"

    def __init__(self, kernel, boundary: Boundary = "valid", tol: float = CG_TOL, max_iter: int = CG_MAX_ITER):
        self.boundary: Boundary = choose(boundary, Boundary, "boundary")
        self.periodic = PeriodicBlur(kernel)
        self.kernel = self.periodic.kernel
        self.exact = self.periodic  # the operator whose exact prox and norm serve boundary "periodic"
        if not (isinstance(tol, (int, float)) and 0 < tol < 1):
            raise ValueError(f"tol must be a number in (0, 1) (relative CG residual), got {tol!r}.")
        if not (isinstance(max_iter, int) and max_iter >= 1):
            raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}.")
        self.tol, self.max_iter = float(tol), int(max_iter)
        h, w = self.kernel.shape[-2:]
        # rows / columns of the scene the kernel reaches beyond the field of view
        # (k * x)[i] reads x[i - h // 2 .. i + h - 1 - h // 2] flipped, i.e. h - 1 - h // 2 rows above i
        self.margin = (h - 1 - h // 2, h // 2, w - 1 - w // 2, w // 2)  # top, bottom, left, right
        self.cg_info: dict = {}
        self._index: dict = {}

    def __repr__(self) -> str:
        return f"Blur(boundary={self.boundary!r}, kernel {tuple(self.kernel.shape)}, sum {self.kernel.sum().item():.4g})"

    # ----- shapes -----

    def image_shape(self, shape) -> tuple[int, ...]:
        """The shape of x for an observation of ``shape`` (..., H, W)."""
        top, bottom, left, right = self.margin
        if self.boundary != "valid":
            return tuple(shape)
        return (*tuple(shape)[:-2], shape[-2] + top + bottom, shape[-1] + left + right)

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """x cut to the observation's field of view (Id unless ``"valid"``)."""
        if self.boundary != "valid":
            return x
        top, bottom, left, right = self.margin
        return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]

    def _check(self, x, name: str, image: bool) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating (B, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}.")
        if self.kernel.ndim == 3 and self.kernel.shape[0] not in (1, x.shape[1]):
            raise ValueError(f"the kernel has {self.kernel.shape[0]} channels but {name} has {x.shape[1]}.")
        h, w = self.kernel.shape[-2:]
        H, W = x.shape[-2:]
        if self.boundary == "valid" and image and (H < h or W < w):
            raise ValueError(f"blur kernel {h}x{w} is larger than the {H}x{W} image; use a smaller kernel or a larger image.")
        if self.boundary == "reflect" and min(H, W) < 2:
            raise ValueError(f"a {H}x{W} image has no mirror image; use boundary 'replicate' or 'valid'.")
        return x

    # ----- the extension E and its adjoint -----

    def _indices(self, H: int, W: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (H, W, str(device))
        if key not in self._index:
            top, bottom, left, right = self.margin
            self._index[key] = (_extension_index(H, top, bottom, self.boundary).to(device),
                                _extension_index(W, left, right, self.boundary).to(device))
        return self._index[key]

    def _extend(self, x: torch.Tensor) -> torch.Tensor:
        """E x: reflect / replicate extension by the margin (Id for ``"valid"``, whose x is already larger)."""
        if self.boundary == "valid":
            return x
        ih, iw = self._indices(x.shape[-2], x.shape[-1], x.device)
        return x.index_select(-2, ih).index_select(-1, iw)

    def _extend_adjoint(self, u: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """E^T u: each extended pixel's value added back to the pixel it copies."""
        if self.boundary == "valid":
            return u
        ih, iw = self._indices(H, W, u.device)
        cols = u.new_zeros(*u.shape[:-1], W).index_add_(-1, iw, u)
        return u.new_zeros(*u.shape[:-2], H, W).index_add_(-2, ih, cols)

    # ----- A, A^T -----

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` in float64 arithmetic, output in x's dtype: (B, C, H, W) for x of :meth:`image_shape`."""
        self._check(x, "x", image=True)
        if self.boundary == "periodic":
            return self.periodic.A(x)
        top, bottom, left, right = self.margin
        u = self._extend(x.to(torch.float64))
        H, W = u.shape[-2] - top - bottom, u.shape[-1] - left - right
        u = self.periodic._apply(_pad_to(u, *_fast_grid(u.shape)), conj=False)
        return u[..., top:top + H, left:left + W].to(x.dtype)

    __call__ = A

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^T y`` (exact): zero-extend y by the margin, correlate with the kernel, fold the extension back."""
        self._check(y, "y", image=False)
        if self.boundary == "periodic":
            return self.periodic.A_adjoint(y)
        top, bottom, left, right = self.margin
        He, We = y.shape[-2] + top + bottom, y.shape[-1] + left + right  # the extended grid
        Hf, Wf = _fast_grid((He, We))
        u = torch.nn.functional.pad(y.to(torch.float64), (left, Wf - We + right, top, Hf - He + bottom))
        u = self.periodic._apply(u, conj=True)[..., :He, :We]
        if self.boundary == "valid":
            return u.to(y.dtype)
        return self._extend_adjoint(u, *y.shape[-2:]).to(y.dtype)

    def norm(self, shape, iters: int = 100) -> float:
        """``||A||`` on images x of spatial ``shape`` (..., H', W'): exact ``max |K|`` for ``"periodic"``;
        otherwise power iteration on A^T A (``iters`` steps from a seeded start, cached per shape; it
        approaches ||A|| from below). For ``"valid"`` ||A|| <= max |K| (a crop of the periodic blur on
        the same grid); ``"replicate"`` can exceed it (an edge pixel is copied into the margin)."""
        if self.boundary == "periodic":
            return self.exact.norm(shape)
        key = ("norm", int(shape[-2]), int(shape[-1]), int(iters))
        if key not in self._index:
            C = self.kernel.shape[0] if self.kernel.ndim == 3 else 1
            like = torch.empty(1, C, int(shape[-2]), int(shape[-1]), dtype=torch.float64)
            self._index[key] = power_iteration(self, like, iters, seed=0)
        return self._index[key]

    # ----- the data step -----

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma, x0: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``argmin_x ||A x - y||^2 / 2 + ||x - z||^2 / (2 gamma)``; ``gamma`` a float or (B,) tensor > 0.

        Exact by FFT for ``"periodic"``; otherwise conjugate gradient on
        ``(I + gamma A^T A) x = z + gamma A^T y`` from ``x0`` (default z), each image of the batch with
        its own step sizes, until every image's relative residual is <= ``tol`` or ``max_iter``
        iterations (see the module). Float64 inside, output in z's dtype; :attr:`cg_info` records
        ``iters`` and the largest final ``residual``."""
        self._check(z, "z", image=True)
        if self.boundary == "periodic":
            return self.exact.prox_l2(z, y, gamma)
        g = torch.as_tensor(gamma, dtype=torch.float64, device=z.device).reshape(-1, 1, 1, 1)
        if not bool((g > 0).all()) or not bool(torch.isfinite(g).all()):
            raise ValueError(f"gamma must be finite and > 0, got {gamma!r}.")

        def M(x):
            return x + g * self.A_adjoint(self.A(x))

        def dot(a, c):  # one inner product per image of the batch, shaped to broadcast
            return (a * c).sum(dim=(1, 2, 3), keepdim=True)

        zd = z.to(torch.float64)
        b = zd + g * self.A_adjoint(y.to(torch.float64))
        x = (zd if x0 is None else x0.to(torch.float64)).clone()
        r = b - M(x)
        bnorm = dot(b, b).sqrt().clamp(min=1e-300)
        p = r.clone()
        rs = dot(r, r)
        it = 0
        rel = (dot(r, r).sqrt() / bnorm).flatten()
        while it < self.max_iter and bool((rel > self.tol).any()):
            Mp = M(p)
            active = (rel > self.tol).to(torch.float64).reshape(-1, 1, 1, 1)  # converged images stop moving
            alpha = active * rs / dot(p, Mp).clamp(min=1e-300)
            x = x + alpha * p
            r = r - alpha * Mp
            rs_new = dot(r, r)
            p = r + (rs_new / rs.clamp(min=1e-300)) * p
            rs = rs_new
            it += 1
            rel = (rs.sqrt() / bnorm).flatten()
        self.cg_info = {"iters": it, "residual": float(rel.max()), "tol": self.tol, "max_iter": self.max_iter}
        return x.to(z.dtype)

    def init(self, y: torch.Tensor) -> torch.Tensor:
        """A first x: y itself, extended by its edge pixels to :meth:`image_shape` for ``"valid"``."""
        if self.boundary != "valid":
            return y.clone()
        top, bottom, left, right = self.margin
        return torch.nn.functional.pad(y, (left, right, top, bottom), mode="replicate")


class BlurDownsampling(Blur):
    """Super-resolution of a photograph: ``A x = S (k * x)``, the :class:`Blur` of ``boundary`` followed by
    ``S``, which keeps pixel (0, 0) of every ``factor x factor`` block of the blurred field of view
    (as :class:`~inrd.restoration.physics.Downsampling`, which is this operator's ``"periodic"`` case,
    exact prox included). An observation (H, W) has x of ``(factor H, factor W)`` plus, for ``"valid"``,
    the kernel's margin (:meth:`image_shape`; :meth:`crop` cuts it). The other boundaries solve the
    data step by the conjugate gradient of :meth:`Blur.prox_l2`.
    """

    task: Task = "super-resolution"

    def __init__(self, kernel, factor: int, boundary: Boundary = "valid", tol: float = CG_TOL,
                 max_iter: int = CG_MAX_ITER):
        super().__init__(kernel, boundary, tol, max_iter)
        self.exact = Downsampling(self.kernel, factor)  # refuses factors other than 2, 3, 4
        self.factor = int(factor)

    def __repr__(self) -> str:
        return f"BlurDownsampling(x{self.factor}, kernel {tuple(self.kernel.shape)}, boundary={self.boundary!r})"

    def image_shape(self, shape) -> tuple[int, ...]:
        f = self.factor
        return super().image_shape((*tuple(shape)[:-2], shape[-2] * f, shape[-1] * f))

    def _grid(self, x: torch.Tensor) -> None:
        top, bottom, left, right = self.margin if self.boundary == "valid" else (0, 0, 0, 0)
        H, W = x.shape[-2] - top - bottom, x.shape[-1] - left - right
        if H % self.factor or W % self.factor or H < 1 or W < 1:
            raise ValueError(f"a {H}x{W} field of view cannot be downsampled by {self.factor}: "
                             f"its sides must be multiples of the factor.")

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, "x", image=True)
        self._grid(x)
        f = self.factor
        return super().A(x)[..., ::f, ::f]

    __call__ = A

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^T y``: y put back on the fine grid with zeros between (``S^T``), then the blur's adjoint."""
        self._check(y, "y", image=False)
        f = self.factor
        up = y.new_zeros(*y.shape[:2], y.shape[-2] * f, y.shape[-1] * f)
        up[..., ::f, ::f] = y
        return super().A_adjoint(up)

    def init(self, y: torch.Tensor) -> torch.Tensor:
        """Bicubic upsampling of y (clamped to [0, 1]), extended by its edge pixels for ``"valid"``."""
        up = torch.nn.functional.interpolate(y, scale_factor=self.factor, mode="bicubic", align_corners=False).clamp(0, 1)
        return Blur.init(self, up)
