"""``inrd restore`` and ``inrd deblur`` as library calls: options -> prepare (checks, observation, operator,
denoiser, plan) -> run into one run folder (:func:`inrd.runs.start_run`) -> the JSON record.

    run = prepare_restore(RestoreOptions(task="deblur", observed="blurred.png", kernel="gaussian:1.6"))
    log = run_restore(run, "out")          # restored.png, observed.png, curves.png, restore.json

Every check runs in :func:`prepare_restore` / :func:`prepare_deblur`, the cheap ones (and the memory
estimate, from the image's header) before the denoiser is loaded; the run folder is claimed only then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import torch

from .. import io, runs
from ..metrics import psnr, ssim
from .baselines import tikhonov_discrepancy, tikhonov_oracle
from .blur import Blur, BlurDownsampling
from .common import CircularPad, check_noise_level, default_sigma
from .fit import check_fit
from .inputs import check_kernel_sum, load_kernel, load_mask
from .noise_level import DESCRIPTIONS, estimate_noise_level, estimator_for
from .physics import Denoising, Inpainting, PeriodicBlur, observe
from .plan import KERNEL_TASKS, DeblurOptions, DeblurPlan, RestorationPlan, RestoreOptions, check_restore_memory, check_upper_level, image_header
from .plots import plot_diagnostics
from .pnp import gs_pnp, pnp_pgd
from .restore import SAMPLING, default_pad, denoiser_channels, restore
from .result import PnPResult

__all__ = ["PreparedRestore", "PreparedDeblur", "prepare_restore", "run_restore", "prepare_deblur", "run_deblur",
           "denoiser_for_channels"]


@dataclass(frozen=True)
class PreparedRestore:
    """A plan with what it runs on: the observation and truth on the plan's device, the loaded denoiser."""

    plan: RestorationPlan
    y: torch.Tensor
    truth: Optional[torch.Tensor]
    denoiser: object


@dataclass(frozen=True)
class PreparedDeblur:
    plan: DeblurPlan
    x: torch.Tensor  # the known image
    y: torch.Tensor  # its simulated observation
    denoiser: object


def denoiser_for_channels(name, channels: int, weights, device):
    """The denoiser for ``channels``-channel images, and the channel count it works on (a denoiser
    fixed to another count, e.g. inrd-small to gray, gets the image converted)."""
    from ..denoisers import load

    D = load(name, weights=weights, device=device)
    fixed = denoiser_channels(D)
    if fixed is not None and fixed != channels:
        try:  # a builder with a channels option (ffdnet, drunet, tv, bm3d)
            D = load(name, weights=weights, device=device, channels=channels)
        except (TypeError, ValueError):
            return D, fixed
        fixed = denoiser_channels(D) or channels
    return D, fixed or channels


def _check_kernel_channels(op, channels: int) -> None:
    k = getattr(op, "kernel", None)
    if k is not None and k.ndim == 3 and k.shape[0] not in (1, channels):
        raise ValueError(f"--kernel has {k.shape[0]} channels but the image has {channels}; give an (h, w) kernel "
                         f"or one with a slice per image channel.")


def _operator(opts: RestoreOptions, h: int, w: int):
    """The operator A of ``opts.task`` for an ``h x w`` observation (kernels and masks checked against it)."""
    if opts.task == "inpaint":
        return Inpainting(load_mask(opts.mask, shape=(h, w)))
    if opts.task == "deblur":
        return Blur(check_kernel_sum(load_kernel(opts.kernel, max_size=(h, w)), opts.normalize_kernel), opts.chosen_boundary)
    if opts.task == "super-resolution":
        f = opts.factor
        k = check_kernel_sum(load_kernel(opts.kernel_spec, max_size=(h * f, w * f)), opts.normalize_kernel)
        return BlurDownsampling(k, f, opts.chosen_boundary)
    return Denoising()


def _noise_level(opts: RestoreOptions, y: torch.Tensor, op) -> tuple[float, str]:
    """``(nu, how it was obtained)``: the given level, or the estimate of :func:`estimate_noise_level` (its
    default estimator; with an inpainting mask the one that takes a mask), described by its ``DESCRIPTIONS``."""
    if opts.noise_level != "auto":
        return float(opts.noise_level), "given"
    mask = op.mask if isinstance(op, Inpainting) else None
    nu = estimate_noise_level(y, mask)
    if not nu > 0:
        raise ValueError("the estimated noise level is 0 (a noiseless or quantised image?); give --noise-level NU > 0.")
    check_noise_level(nu, "the estimated noise level (give --noise-level NU instead)")
    check_upper_level(nu, opts.chosen_algorithm, "estimated", opts.denoiser)
    return nu, DESCRIPTIONS[estimator_for(mask)]


def _truth(opts: RestoreOptions, observed_channels: int, want: tuple[int, int]) -> Optional[torch.Tensor]:
    if not opts.truth:
        return None
    truth = io.load_image(opts.truth)
    if tuple(truth.shape[-2:]) != want:
        raise ValueError(f"--truth is {truth.shape[-2]}x{truth.shape[-1]} but the restored image will be {want[0]}x{want[1]}.")
    if truth.shape[1] != observed_channels:
        kind = {1: "gray", 3: "RGB"}
        raise ValueError(f"--truth is {kind[truth.shape[1]]} but the observation is {kind[observed_channels]}; "
                         f"give the truth in the observation's colours.")
    return truth


def prepare_restore(opts: RestoreOptions) -> PreparedRestore:
    """Check everything about ``opts`` and the files it names, load the observation and the denoiser, and
    build the :class:`RestorationPlan`; raises a one-line ``ValueError`` on the first problem."""
    factor = opts.factor if opts.task == "super-resolution" else 1
    header = image_header(opts.observed)
    if header is not None:
        c, h, w = header
        images = opts.samples if opts.chosen_algorithm in SAMPLING else 1
        fix = "lower --samples or restore a smaller image" if images > 1 else "restore a smaller image (or crop it)"
        pad = default_pad(opts.chosen_algorithm, opts.chosen_boundary == "periodic")  # what restore() will pad
        check_restore_memory(opts.denoiser, c, h * factor, w * factor, images, fix, opts.device,
                             opts.chosen_algorithm in SAMPLING, pad, blur=opts.task in KERNEL_TASKS)
    y = io.load_image(opts.observed)
    h, w = y.shape[-2:]
    op = _operator(opts, h, w)
    _check_kernel_channels(op, y.shape[1])
    nu, method = _noise_level(opts, y, op)
    truth = _truth(opts, y.shape[1], (h * factor, w * factor))
    D, channels = denoiser_for_channels(opts.denoiser, y.shape[1], opts.weights, opts.device)
    check_upper_level(nu, opts.chosen_algorithm, method if method == "given" else "estimated", opts.denoiser,
                      getattr(D, "sigma_range", None))  # the loaded denoiser's own range
    _check_kernel_channels(op, channels)
    if channels != y.shape[1]:
        y = io.load_image(opts.observed, channels=channels)
        truth = io.load_image(opts.truth, channels=channels) if opts.truth else None
    plan = RestorationPlan(opts, op, nu, method, channels, tuple(y.shape), opts.algorithm_options)
    return PreparedRestore(plan, y.to(opts.device), None if truth is None else truth.to(opts.device), D)


def run_restore(run: PreparedRestore, out) -> dict:
    """Restore ``run``'s observation into the run folder ``out``; returns what ``restore.json`` holds, with ``fit``
    (:func:`~inrd.restoration.fit.check_fit`: does the result fit the observation?) and, when it does not, ``warning``."""
    plan, o = run.plan, run.plan.options
    with runs.start_run(out, plan.record()) as folder:
        t0 = time.perf_counter()
        res = restore(run.y, plan.operator, run.denoiser, plan.noise_level, plan.algorithm, task=o.task, x_true=run.truth,
                      **plan.algorithm_options)
        log = {**plan.record(), "seconds": time.perf_counter() - t0, **res.to_dict(), "versions": io.versions()}
        fit = check_fit(plan.operator, res.x, run.y, plan.noise_level, view=_field_of_view(plan.operator, res.x))
        log["fit"] = fit.record()
        if not fit.trusted:
            log["warning"] = fit.warning
        _write_restore_outputs(folder, run, res, log)
    return log


def _field_of_view(op, x: torch.Tensor) -> torch.Tensor:
    """x cut to the observation's field of view (a ``valid`` blur restores the kernel's margin too)."""
    return op.crop(x) if hasattr(op, "crop") else x


def _write_restore_outputs(folder, run: PreparedRestore, res: PnPResult, log: dict) -> None:
    """restored.png, observed.png, (samples.png, std.png), curves.png and restore.json; ``log`` gets the metrics.
    The images are the estimate's field of view (:func:`_field_of_view`)."""
    plan = run.plan
    x = _field_of_view(plan.operator, res.x)
    io.save_image(folder / "restored.png", x)
    io.save_image(folder / "observed.png", run.y)
    if run.truth is not None:
        log.update(psnr_restored=float(psnr(x, run.truth)[0]), ssim_restored=ssim(x, run.truth))
    if res.samples is not None:
        io.save_grid(folder / "samples.png", _field_of_view(plan.operator, res.samples))
        std = _field_of_view(plan.operator, res.std)
        scale = float(std.max()) or 1.0
        io.save_image(folder / "std.png", std / scale)
        log.update(std_png_scale=scale, std_mean=float(std.mean()))
    title = f"{plan.options.task}, {plan.algorithm}, {plan.options.denoiser}, nu={plan.noise_level:.4g}: {res.verdict}"
    plot_diagnostics(folder / "curves.png", {plan.algorithm: res}, title)
    io.write_json(folder / "restore.json", log)


def prepare_deblur(opts: DeblurOptions) -> PreparedDeblur:
    """Check ``opts``, load the image and the denoiser, simulate the observation, build the :class:`DeblurPlan`."""
    size = opts.size or None
    header = image_header(opts.image)
    if header is not None:
        c, h, w = header
        check_restore_memory(opts.denoiser, c, size or h, size or w, 1, "lower --size", opts.device, pad=opts.pad)
    x = io.load_image(opts.image, size=size)
    op = PeriodicBlur(check_kernel_sum(load_kernel(opts.kernel, max_size=tuple(x.shape[-2:])), opts.normalize_kernel))
    _check_kernel_channels(op, x.shape[1])
    D, channels = denoiser_for_channels(opts.denoiser, x.shape[1], opts.weights, opts.device)
    _check_kernel_channels(op, channels)
    if channels != x.shape[1]:
        x = io.load_image(opts.image, size=size, channels=channels)
    x = x.to(opts.device)
    y = observe(x, op, opts.noise_level, seed=opts.seed)
    sigma = opts.sigma_denoiser if opts.sigma_denoiser is not None else default_sigma(D, opts.noise_level, opts.algorithm)
    return PreparedDeblur(DeblurPlan(opts, op, sigma, channels), x, y, D)


def run_deblur(run: PreparedDeblur, out) -> dict:
    """PnP-PGD or GS-PnP on the simulated observation, with the Tikhonov baselines, into the run folder ``out``;
    returns what ``deblur.json`` holds."""
    plan, o = run.plan, run.plan.options
    x, y, op, nu = run.x, run.y, plan.operator, o.noise_level
    D = CircularPad(run.denoiser, o.pad)
    with runs.start_run(out, plan.record()) as folder:
        t0 = time.perf_counter()
        if o.algorithm == "pnp-pgd":
            res = pnp_pgd(y, op, D, plan.sigma_denoiser, stepsize=o.stepsize, iters=o.iters, x_true=x, noise_level=nu)
        else:
            res = gs_pnp(y, op, D, plan.sigma_denoiser, iters=o.iters, x_true=x, noise_level=nu)
        seconds = time.perf_counter() - t0
        _, lam, p_tik = tikhonov_oracle(y, op, x)
        x_dis, lam_dis = tikhonov_discrepancy(y, op, nu)
        p_obs, p_out, p_dis = float(psnr(y, x)[0]), float(psnr(res.x, x)[0]), float(psnr(x_dis, x)[0])
        io.save_image(folder / "observed.png", y)
        io.save_image(folder / "restored.png", res.x)
        io.save_image(folder / "ground_truth.png", x)
        plot_diagnostics(
            folder / "curves.png", {f"{o.algorithm} {o.denoiser} sigma={plan.sigma_denoiser:.4g}": res},
            f"{o.image}, kernel {o.kernel}, nu={nu}: verdict {res.verdict}",
            {"observed": p_obs, "Tikhonov (oracle lam)": p_tik, "Tikhonov (discrepancy lam)": p_dis},
        )
        log = {**plan.record(), "seconds": seconds, "psnr_observed": p_obs, "psnr_restored": p_out,
               "psnr_tikhonov_oracle": p_tik, "tikhonov_lam": lam, "psnr_tikhonov_discrepancy": p_dis,
               "tikhonov_discrepancy_lam": lam_dis[0], **res.to_dict(), "versions": io.versions()}
        io.write_json(folder / "deblur.json", log)
    return log
