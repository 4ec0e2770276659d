"""Restoration of ``y = A v + w``, ``w ~ N(0, nu^2 Id)`` with a plug-and-play denoiser (paper,
Sec. 3.3), with per-iteration stability diagnostics.

* :mod:`~inrd.restoration.inputs`: blur kernels and inpainting masks, read and checked;
* :mod:`~inrd.restoration.physics`: the operators (periodic blur, inpainting mask, super-resolution,
  denoising) with exact adjoints and proximal maps; :func:`observe`, :func:`estimate_noise`;
* :mod:`~inrd.restoration.baselines`: Tikhonov least squares, oracle and discrepancy-principle weights;
* :mod:`~inrd.restoration.pnp`: raw PnP-PGD (the paper's Fig. 4), GS-PnP, DPIR-style HQS;
* :mod:`~inrd.restoration.posterior`: INRD posterior sampling (the INRD loop made data-consistent);
* :mod:`~inrd.restoration.common`: what the algorithms share (checks, data term, :class:`CircularPad`);
* :mod:`~inrd.restoration.result`: the stability verdict and :class:`PnPResult`;
* :mod:`~inrd.restoration.restore`: :func:`restore`, one interface for all algorithms;
* :mod:`~inrd.restoration.plan` and :mod:`~inrd.restoration.workflow`: ``inrd restore`` and ``inrd deblur``
  as a library (options -> plan -> run folder); :mod:`~inrd.restoration.plots`: their curves.
"""

from .baselines import tikhonov, tikhonov_deconvolution, tikhonov_discrepancy, tikhonov_oracle
from .common import NU_MIN, CircularPad, check_noise_level, default_sigma
from .inputs import check_kernel_sum, gaussian_kernel, load_kernel, load_mask
from .physics import NOISE_ESTIMATOR, Denoising, Downsampling, Inpainting, PeriodicBlur, Task, estimate_noise, observe, operator_norm
from .pnp import gs_pnp, hqs, pnp_pgd
from .posterior import POSTERIOR_SIGMA_MAX, DataConsistent, inrd_posterior
from .restore import ALGORITHMS, DEFAULT_ALGORITHM, HQS_TASK_OPTIONS, SAMPLING, Algorithm, denoiser_channels, restore
from .result import DIAGNOSE_DEFAULTS, PnPResult, diagnose

__all__ = [
    "PeriodicBlur", "Inpainting", "Downsampling", "Denoising", "Task", "gaussian_kernel", "load_kernel",
    "check_kernel_sum", "load_mask", "operator_norm", "observe", "estimate_noise", "NOISE_ESTIMATOR",
    "tikhonov", "tikhonov_deconvolution", "tikhonov_oracle", "tikhonov_discrepancy",
    "CircularPad", "default_sigma", "NU_MIN", "check_noise_level", "pnp_pgd", "gs_pnp", "hqs", "inrd_posterior", "DataConsistent", "POSTERIOR_SIGMA_MAX",
    "diagnose", "PnPResult", "DIAGNOSE_DEFAULTS",
    "restore", "Algorithm", "ALGORITHMS", "DEFAULT_ALGORITHM", "HQS_TASK_OPTIONS", "SAMPLING", "denoiser_channels",
]
