"""Per-step diagnostics of an INRD run: is the noise level of the iterates the one the schedule intends?

The paper's variance rule (eq. 20) assumes that ``V_t + gamma_t Z_t`` carries noise sigma_t and that
the relaxed denoiser leaves ``(1 - rho_t) sigma_t``. Denoisers that were not trained for diffusion
break that assumption (the paper's DRUNet instability, the degeneration to the mean value without a
large start noise); these statistics make it visible and measurable.

All levels are in image units (pixel values in [0, 1]), like the sigmas of the schedule.
"""

from __future__ import annotations

import math

import torch

from .sampler import Step

__all__ = ["noise_level", "noise_given_content", "StabilityRecorder"]

_MAD_TO_STD = 1 / 0.6744897501960817  # 1 / Phi^{-1}(3/4)
_RTOL = 1e-7  # Newton / bisection stop on the root of noise_given_content (the result is within 1e-6 relative)


def _hh(x: torch.Tensor) -> torch.Tensor:
    """Finest diagonal Haar coefficients ``(a - b - c + d) / 2`` of each 2x2 block, (B, N) float64 (odd
    trailing rows / columns dropped); white noise of std s gives coefficients of std s."""
    x = x.to(torch.float64)
    H, W = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :H, :W]
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return hh.reshape(x.shape[0], -1)


def noise_level(x: torch.Tensor) -> torch.Tensor:
    """Robust per-image estimate of white Gaussian noise std (Donoho's MAD of the finest diagonal Haar
    coefficients): ``median(|HH|) / 0.6745``, with ``HH = (a - b - c + d) / 2`` on 2x2 blocks, so that
    white noise of std s gives HH of std s. Returns a (B,) float64 tensor, in the units of x.

    Image structure biases it upwards (edges and fine texture leak into HH); on smooth content it is
    accurate. The bias matters when the noise is not far above the content's own HH level (the value this
    function returns for the clean image): :func:`noise_given_content` removes it when the clean image is
    known. Its statistical error is the MAD's, a relative std of about ``1.17 / sqrt(N)`` for
    ``N = H W C / 4`` coefficients (7 % at 32x32x1).
    """
    return _hh(x).abs().median(dim=1).values * _MAD_TO_STD


def _mixture_fraction(m: torch.Tensor, h: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``F(m; s) = mean_j P(|h_j + s Z| <= m)`` and ``dF/ds``, for m, s of shape (...,) (s > 0) and
    h (..., N) (only |h_j| matters)."""
    a1 = (m[..., None] - h) / s[..., None]
    a2 = (-m[..., None] - h) / s[..., None]
    F = 0.5 * (torch.erf(a1 / math.sqrt(2)) - torch.erf(a2 / math.sqrt(2))).mean(-1)
    phi = lambda a: torch.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)  # noqa: E731
    return F, (a2 * phi(a2) - a1 * phi(a1)).mean(-1) / s


def _solve_noise(m: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The s >= 0 of :func:`noise_given_content` for observed medians m (...,) and clean coefficients
    h (..., N), float64: s = 0 where ``F(m; 0) <= 1/2``, else the root of ``F(m; s) = 1/2`` in
    ``(0, m / 0.6745]`` by Newton's method safeguarded by bisection (the bracket keeps F > 1/2 at its
    lower end and F <= 1/2 at its upper end), to a relative step of 1e-7."""
    m, h = m.to(torch.float64), h.to(torch.float64).abs()
    F0 = (h < m[..., None]).double().mean(-1) + 0.5 * (h == m[..., None]).double().mean(-1)
    s = torch.zeros_like(m)
    todo = F0 > 0.5  # else no noise is needed to explain m (this includes m = 0)
    if not bool(todo.any()):
        return s
    m, h = m[todo], h.expand(*todo.shape, h.shape[-1])[todo]
    lo, hi = torch.zeros_like(m), m * _MAD_TO_STD  # F(m; m / 0.6745) <= 1/2 (Anderson: |h| > 0 only lowers it)
    c = h.median(-1).values * _MAD_TO_STD
    x = (hi**2 - c**2).clamp(min=0).sqrt()  # start from the variance subtraction
    x = torch.where((x > lo) & (x < hi), x, hi / 2)
    active = torch.ones_like(m, dtype=torch.bool)
    for _ in range(200):
        F, dF = _mixture_fraction(m, h, x)
        above = F > 0.5
        lo, hi = torch.where(above, x, lo), torch.where(above, hi, x)
        step = (F - 0.5) / dF
        newton = x - step
        ok = (dF < 0) & (newton > lo) & (newton < hi)
        new = torch.where(ok, newton, (lo + hi) / 2)
        conv = (new - x).abs() <= _RTOL * new
        x = torch.where(active, new, x)
        active = active & ~conv
        if not bool(active.any()):
            break
    s[todo] = x
    return s


def noise_given_content(noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-image std of the white Gaussian noise in ``noisy``, knowing the same images without noise
    (``clean``), from the finest diagonal Haar coefficients (:func:`noise_level`'s). (B,) float64, in
    image units ([0, 1]), like the inputs; ``clean`` broadcasts against ``noisy`` over the batch.

    With ``h_j`` the clean image's coefficients and ``M = median_j |h_j + n_j|`` the noisy image's (the
    ``n_j`` iid N(0, s^2)), s solves ``F(M; s) = 1/2`` where

        F(M; s) = mean_j [Phi((M - h_j) / s) - Phi((-M - h_j) / s)] = mean_j P(|h_j + s Z| <= M),

    the expected fraction of noisy coefficients inside [-M, M]. It starts at ``F(M; 0) =
    mean_j 1{|h_j| < M}`` (ties count 1/2) and is at most 1/2 at ``s = M / 0.6745`` (the plain MAD
    estimate; any ``h_j != 0`` only lowers a term there); if ``F(M; 0) <= 1/2`` the content alone
    explains M and s = 0, else s is the root in ``(0, M / 0.6745]``, found in float64 to 1e-6 relative.
    The terms with ``|h_j| < M`` decrease with s, those with ``|h_j| > M`` first rise: F decreases
    where the former dominate, as they do around the root in practice; the solver keeps a bracket with
    ``F > 1/2`` below and ``F <= 1/2`` above, so it returns a root in any case.

    Why not subtract variances, ``sqrt(noise_level(noisy)^2 - noise_level(clean)^2)``: that is exact
    only when the clean coefficients are Gaussian (a stationary texture). Images are heavy-tailed (flat
    regions with ``h_j ~ 0`` and a few large coefficients on edges): the content's own median ignores
    the large coefficients, while the median of ``|h_j + n_j|`` reacts to all of them, so the
    subtraction over-reads the noise, most near and below the content level (accuracy on textures,
    edges, model samples and photographs: ``docs/robustness.md``). This estimator uses the whole
    distribution of the ``h_j`` and has no such bias; its error is the MAD's statistical one, by the
    delta method a relative std of ``sqrt(sum_j p_j (1 - p_j)) / (N s |dF/ds|)`` with
    ``p_j = P(|h_j + n_j| <= M)`` for N coefficients: ``1.17 / sqrt(N)`` for pure noise, larger when
    the content's coefficients near M outnumber the noise's (noise well below the content's HH level).
    """
    m = _hh(noisy).abs().median(dim=1).values
    h = _hh(clean).to(m.device)
    return _solve_noise(m, h.expand(m.shape[0], -1))


class StabilityRecorder:
    """Callback for :func:`inrd.sample` that records, after each step t:

    ``mean``, ``std`` (of V_{t-1}, averaged over the batch), ``noise_in`` (estimated noise level of
    V_t + gamma_t Z_t) vs ``sigma`` (the schedule's intent), ``noise_out`` (estimated noise left in
    V_{t-1}) vs ``expected_out = (1 - rho_t) sigma_t``, and ``min`` / ``max`` of V_{t-1}.
    ``noise_in`` and ``noise_out`` are batch means of the per-image :func:`noise_level` (image units).
    Kept for the content correction of :meth:`summary` (not in ``rows``): per recorded step, each
    image's median ``|HH|`` of V_t + gamma_t Z_t, and after the last step (t = 1) the sorted ``|HH|``
    of each image of V_0 on the CPU in float64, thinned to at most 4096 evenly spaced order statistics
    per image (mid-quantiles; ``F`` of :func:`noise_given_content` is a mean of a function decreasing in
    ``|h_j|``, so this moves it by at most 1/4096: 0.06 % of s for pure noise, far below the MAD's error).
    ``every`` thins the record for long runs (the last step is always kept).
    """

    _CONTENT_KEEP = 4096

    def __init__(self, every: int = 1):
        self.every = max(1, int(every))
        self.rows: list[dict] = []
        self._median_in_each: list[list[float]] = []  # per recorded row: median |HH| of each image of V_t + gamma_t Z_t
        self._noise_out_each: list[float] = []  # noise_level of each image of the latest recorded V_{t-1}
        self._content_hh: torch.Tensor | None = None  # (B, <= 4096) sorted |HH| of V_0, once t = 1 is recorded

    def __call__(self, st: Step) -> None:
        if st.t % self.every and st.t != 1:
            return
        x = st.x
        m_in, n_out = _hh(st.noisy).abs().median(dim=1).values, noise_level(x)
        self._median_in_each.append(m_in.tolist())
        self._noise_out_each = n_out.tolist()
        if st.t == 1:
            h = _hh(x).abs().sort(dim=1).values.cpu()
            n = h.shape[1]
            if n > self._CONTENT_KEEP:
                h = h[:, ((torch.arange(self._CONTENT_KEEP, dtype=torch.float64) + 0.5) * n / self._CONTENT_KEEP).long()]
            self._content_hh = h
        self.rows.append(
            {
                "t": st.t,
                "sigma": st.sigma,
                "rho": st.rho,
                "gamma": st.gamma,
                "mean": float(x.mean()),
                "std": float(x.std()) if x.numel() > 1 else 0.0,
                "min": float(x.min()),
                "max": float(x.max()),
                "noise_in": float(m_in.mean()) * _MAD_TO_STD,
                "noise_out": float(n_out.mean()),
                "expected_out": (1 - st.rho) * st.sigma,
            }
        )

    def content_levels(self) -> list[float] | None:
        """Per-image content HH level c_i (image units): :func:`noise_level` of the final iterate V_0, the
        clean sample, once the run has finished (last row t = 1); None before (or after a divergence)."""
        if not self.rows or self.rows[-1]["t"] != 1:
            return None
        return list(self._noise_out_each)

    def _corrected_ratios(self) -> tuple[list[tuple[int, float]], int, int]:
        """``[(t, mean_i s_i(t) / sigma_t)]`` with s_i(t) the :func:`noise_given_content` estimate of image i
        (V_0 as the clean image) over the images with sigma_t >= c_i, the number of recorded steps where no
        image qualifies (excluded) and of (step, image) pairs left out."""
        c = self.content_levels()
        if c is None or self._content_hh is None:
            return [], 0, 0
        keep = [k for k, r in enumerate(self.rows) if r["sigma"] > 0]
        sig = torch.tensor([self.rows[k]["sigma"] for k in keep], dtype=torch.float64)
        med = torch.tensor([self._median_in_each[k] for k in keep], dtype=torch.float64).reshape(len(keep), len(c))
        h = self._content_hh
        est = torch.stack([_solve_noise(med[:, i], h[i].expand(len(keep), -1)) for i in range(len(c))], dim=1)
        ok = sig[:, None] >= torch.tensor(c, dtype=torch.float64)[None, :]
        out, steps_out = [], 0
        for k, row_ok, row_est, s in zip(keep, ok, est, sig):
            if row_ok.any():
                out.append((self.rows[k]["t"], float(row_est[row_ok].mean() / s)))
            else:
                steps_out += 1
        return out, steps_out, int((~ok).sum())

    def summary(self) -> dict:
        """Headline numbers: range of estimated / intended input noise, final std and range.

        ``noise_in_over_sigma_raw_min`` / ``_max``: ``noise_in / sigma_t`` over all recorded steps, the
        plain MAD estimate, biased upwards where sigma_t is not far above the content's own HH level.

        ``noise_in_over_sigma_min`` / ``_max``: the content-corrected ratio. Each image's final iterate
        V_0, the clean sample, serves as its content (per image: the samples of one batch differ in
        texture by more than a factor 10); a step's ratio is the mean over images of
        :func:`noise_given_content` ``(V_t + gamma_t Z_t, V_0) / sigma_t`` (computed from the recorded
        medians). Images with sigma_t < c_i, c_i the content level (:func:`noise_level` of V_0), are left
        out of that step (``images_excluded`` counts the (step, image) pairs), and a step with none left is
        counted in ``steps_excluded`` (of ``steps_recorded``): below c_i the estimate of a small image (a
        few hundred coefficients) is too noisy to read and often 0, the content alone explaining the
        median. ``content_level`` is the batch mean of c_i, ``content_level_range`` their [min, max].

        The correction assumes V_0 is clean: noise left in V_0 counts as content (its steps are then
        mostly excluded; read the raw ratios). Before the last step, or after a divergence, there is no
        V_0 and the corrected keys are None. A deterministic relaxation (ddim) adds no fresh noise after
        the start, so each image carries its own start noise and per-image ratios drift from 1: the
        corrected range is wider than with canonical INRD, by the chain's doing, not the estimator's.
        """
        if not self.rows:
            return {}
        raw = [r["noise_in"] / r["sigma"] for r in self.rows if r["sigma"] > 0]
        corrected, steps_out, pairs_out = self._corrected_ratios()
        ratios = [v for _, v in corrected]
        c = self.content_levels()
        last = self.rows[-1]
        return {
            "noise_in_over_sigma_min": min(ratios) if ratios else None,
            "noise_in_over_sigma_max": max(ratios) if ratios else None,
            "noise_in_over_sigma_raw_min": min(raw) if raw else None,
            "noise_in_over_sigma_raw_max": max(raw) if raw else None,
            "content_level": sum(c) / len(c) if c else None,
            "content_level_range": [min(c), max(c)] if c else None,
            "steps_recorded": len(raw),
            "steps_excluded": steps_out if c else None,
            "images_excluded": pairs_out if c else None,
            "final_std": last["std"],
            "final_range": [last["min"], last["max"]],
            "collapsed_to_mean": last["std"] < 1e-3,
        }

    def plot(self, path, title: str = "") -> None:
        """Write a PNG of the per-step statistics (atomically)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .io import save_figure

        t = [r["t"] for r in self.rows]
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        ax[0].semilogy(t, [r["sigma"] for r in self.rows], "k-", label="sigma_t (intended)")
        ax[0].semilogy(t, [max(r["noise_in"], 1e-6) for r in self.rows], "r.", ms=3, label="estimated noise in V_t + gamma_t Z_t")
        corrected = self._corrected_ratios()[0]
        if corrected:
            sig = {r["t"]: r["sigma"] for r in self.rows}
            ax[0].semilogy([k for k, _ in corrected], [max(v * sig[k], 1e-6) for k, v in corrected], "mx", ms=3,
                           label="the same, content-corrected (images with sigma_t >= their content level)")
        ax[0].semilogy(t, [max(r["expected_out"], 1e-6) for r in self.rows], "b-", lw=0.8, label="(1 - rho_t) sigma_t")
        ax[0].semilogy(t, [max(r["noise_out"], 1e-6) for r in self.rows], "c.", ms=3, label="estimated noise left in V_{t-1}")
        ax[0].set_xlabel("t")
        ax[0].invert_xaxis()
        ax[0].legend(fontsize=7)
        ax[0].set_title("noise levels")
        ax[1].plot(t, [r["mean"] for r in self.rows], label="mean of V_{t-1}")
        ax[1].plot(t, [r["std"] for r in self.rows], label="std of V_{t-1}")
        ax[1].set_xlabel("t")
        ax[1].invert_xaxis()
        ax[1].legend(fontsize=7)
        ax[1].set_title("iterate statistics")
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        save_figure(fig, path, dpi=100)
