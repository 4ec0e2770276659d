"""Per-step diagnostics of an INRD run: is the noise level of the iterates the one the schedule intends?

The paper's variance rule (eq. 20) assumes that ``V_t + gamma_t Z_t`` carries noise sigma_t and that
the relaxed denoiser leaves ``(1 - rho_t) sigma_t``. Denoisers that were not trained for diffusion
break that assumption (the paper's DRUNet instability, the degeneration to the mean value without a
large start noise); these statistics make it visible and measurable.
"""

from __future__ import annotations

import torch

from .sampler import Step

__all__ = ["noise_level", "StabilityRecorder"]

_MAD_TO_STD = 1 / 0.6744897501960817  # 1 / Phi^{-1}(3/4)


def noise_level(x: torch.Tensor) -> torch.Tensor:
    """Robust per-image estimate of white Gaussian noise std (Donoho's MAD of the finest diagonal Haar
    coefficients): ``median(|HH|) / 0.6745``, with ``HH = (a - b - c + d) / 2`` on 2x2 blocks, so that
    white noise of std s gives HH of std s. Returns a (B,) float64 tensor, in the units of x.

    Image structure biases it upwards slightly (edges leak into HH); on smooth content it is accurate.
    """
    x = x.to(torch.float64)
    H, W = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :H, :W]
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return hh.reshape(x.shape[0], -1).abs().median(dim=1).values * _MAD_TO_STD


class StabilityRecorder:
    """Callback for :func:`inrd.sample` that records, after each step t:

    ``mean``, ``std`` (of V_{t-1}, averaged over the batch), ``noise_in`` (estimated noise level of
    V_t + gamma_t Z_t) vs ``sigma`` (the schedule's intent), ``noise_out`` (estimated noise left in
    V_{t-1}) vs ``expected_out = (1 - rho_t) sigma_t``, and ``min`` / ``max`` of V_{t-1}.
    ``every`` thins the record for long runs (the last step is always kept).
    """

    def __init__(self, every: int = 1):
        self.every = max(1, int(every))
        self.rows: list[dict] = []

    def __call__(self, st: Step) -> None:
        if st.t % self.every and st.t != 1:
            return
        x = st.x
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
                "noise_in": float(noise_level(st.noisy).mean()),
                "noise_out": float(noise_level(x).mean()),
                "expected_out": (1 - st.rho) * st.sigma,
            }
        )

    def summary(self) -> dict:
        """Headline numbers: worst ratio of estimated to intended input noise, final std and range."""
        if not self.rows:
            return {}
        ratios = [r["noise_in"] / r["sigma"] for r in self.rows if r["sigma"] > 0]
        last = self.rows[-1]
        return {
            "noise_in_over_sigma_min": min(ratios),
            "noise_in_over_sigma_max": max(ratios),
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
