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

__all__ = ["noise_level", "content_corrected", "StabilityRecorder"]

_MAD_TO_STD = 1 / 0.6744897501960817  # 1 / Phi^{-1}(3/4)


def noise_level(x: torch.Tensor) -> torch.Tensor:
    """Robust per-image estimate of white Gaussian noise std (Donoho's MAD of the finest diagonal Haar
    coefficients): ``median(|HH|) / 0.6745``, with ``HH = (a - b - c + d) / 2`` on 2x2 blocks, so that
    white noise of std s gives HH of std s. Returns a (B,) float64 tensor, in the units of x.

    Image structure biases it upwards (edges and fine texture leak into HH); on smooth content it is
    accurate. The bias matters when the noise is not far above the content's own HH level (the value this
    function returns for the clean image): see :func:`content_corrected`. Its statistical error is the
    MAD's, a relative std of about ``1.17 / sqrt(N)`` for ``N = H W C / 4`` coefficients (7 % at 32x32x1).
    """
    x = x.to(torch.float64)
    H, W = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :H, :W]
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return hh.reshape(x.shape[0], -1).abs().median(dim=1).values * _MAD_TO_STD


def content_corrected(level, content):
    """Noise level with the image content's share removed: ``sqrt(max(level^2 - content^2, 0))``.

    ``level`` is :func:`noise_level` of a noisy image, ``content`` that of the same image without noise
    (its own HH level), both in image units ([0, 1]). Independent noise and content HH coefficients add
    in variance, and the MAD estimate of their sum follows ``level^2 ~ noise^2 + content^2``
    approximately: exactly (up to the MAD's statistical error) when the content's HH coefficients are
    Gaussian (a stationary texture), with an upward residual when they are heavy-tailed (edges), since
    the median of ``|content + noise|`` reacts to large coefficients that the content's own median
    ignores. Its error is that of the two MAD estimates amplified by ``sqrt(level^4 + content^4) /
    noise^2``, about 2.2x at noise = content and growing as (content / noise)^2 below: not reliable there.
    Accuracy on textures, model samples and photographs: ``docs/robustness.md``.
    Works on floats and on tensors.
    """
    if isinstance(level, torch.Tensor) or isinstance(content, torch.Tensor):
        return (torch.as_tensor(level) ** 2 - torch.as_tensor(content) ** 2).clamp(min=0).sqrt()
    return math.sqrt(max(level * level - content * content, 0.0))


class StabilityRecorder:
    """Callback for :func:`inrd.sample` that records, after each step t:

    ``mean``, ``std`` (of V_{t-1}, averaged over the batch), ``noise_in`` (estimated noise level of
    V_t + gamma_t Z_t) vs ``sigma`` (the schedule's intent), ``noise_out`` (estimated noise left in
    V_{t-1}) vs ``expected_out = (1 - rho_t) sigma_t``, and ``min`` / ``max`` of V_{t-1}.
    ``noise_in`` and ``noise_out`` are batch means of the per-image :func:`noise_level` (image units);
    the per-image values are kept (not in ``rows``) for the content correction of :meth:`summary`.
    ``every`` thins the record for long runs (the last step is always kept).
    """

    def __init__(self, every: int = 1):
        self.every = max(1, int(every))
        self.rows: list[dict] = []
        self._noise_in_each: list[list[float]] = []  # per recorded row: noise_level of each image of V_t + gamma_t Z_t
        self._noise_out_each: list[float] = []  # noise_level of each image of the latest recorded V_{t-1}

    def __call__(self, st: Step) -> None:
        if st.t % self.every and st.t != 1:
            return
        x = st.x
        n_in, n_out = noise_level(st.noisy), noise_level(x)
        self._noise_in_each.append(n_in.tolist())
        self._noise_out_each = n_out.tolist()
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
                "noise_in": float(n_in.mean()),
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
        """``[(t, mean_i sqrt(max(noise_in_i^2 - c_i^2, 0)) / sigma_t)]`` over the images with sigma_t >= c_i,
        the number of recorded steps where no image qualifies (excluded) and of (step, image) pairs left out."""
        c = self.content_levels()
        if c is None:
            return [], 0, 0
        out, steps_out, pairs_out = [], 0, 0
        for r, n_each in zip(self.rows, self._noise_in_each):
            s = r["sigma"]
            if s <= 0:
                continue
            ok = [content_corrected(n, ci) / s for n, ci in zip(n_each, c) if s >= ci]
            pairs_out += len(c) - len(ok)
            if ok:
                out.append((r["t"], sum(ok) / len(ok)))
            else:
                steps_out += 1
        return out, steps_out, pairs_out

    def summary(self) -> dict:
        """Headline numbers: range of estimated / intended input noise, final std and range.

        ``noise_in_over_sigma_raw_min`` / ``_max``: ``noise_in / sigma_t`` over all recorded steps, the
        plain MAD estimate, biased upwards where sigma_t is not far above the content's own HH level.

        ``noise_in_over_sigma_min`` / ``_max``: the content-corrected ratio. The content level c_i of
        image i is the :func:`noise_level` of its final iterate V_0, the clean sample (per image: the
        samples of one batch differ in texture by more than a factor 10); a step's ratio is the mean over
        images of :func:`content_corrected` ``(noise_in_i, c_i) / sigma_t``. Images with sigma_t < c_i are
        left out of that step (``images_excluded`` counts the (step, image) pairs), and a step with none
        left is counted in ``steps_excluded`` (of ``steps_recorded``). ``content_level`` is the batch mean
        of c_i, ``content_level_range`` their [min, max].

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
