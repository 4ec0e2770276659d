"""INRD as a diffusers scheduler: ``pipe.scheduler = INRDScheduler.from_config(pipe.scheduler.config, rho="ind")``.

diffusers' own scheduler contract (its ``SchedulerCommonTest`` checks and DDPM / DDIM tests, written anew)
runs in ``tests/diffusers_conformance``, with the legitimate differences argued there.

The paper's scheme (Section 2.3) runs in the variance-exploding (VE) frame,

    V_{t-1} = (1 - rho_t) U_t + rho_t D_{sigma_t}(U_t),     U_t = V_t + gamma_t Z_t,          (eq. 13)
    gamma_t^2 = sigma_t^2 - (1 - rho_{t+1})^2 sigma_{t+1}^2,                                  (eq. 20)

while a diffusers pipeline carries the variance-preserving (VP) iterate ``x_t = sqrt(abar_t) x_0 +
sqrt(1 - abar_t) eps`` of images in [-1, 1]. One :meth:`INRDScheduler.step` at pruned level k
(network timestep ``a_k - 1``, paper index t = k) does, with every coefficient computed in float64:

1. ``u = x_t / sqrt(abar_t)``: the VE iterate ``U_t``, noise level ``s_t = sqrt((1 - abar_t) / abar_t)``;
2. ``D(u)`` from the model output: ``u - s_t eps`` (eq. 15), ``abar_t u - sqrt(1 - abar_t) v`` or the
   predicted sample itself, by :func:`inrd.denoisers.eps.clean_estimate`, the code of :class:`EpsDenoiser`;
3. ``V = (1 - rho_t) u + rho_t D(u)`` (eq. 13) by :func:`inrd.sampler.inrd_step` itself (given that D(u)),
   then ``u' = V + gamma_{t-1} Z``;
4. ``x_{t-1} = sqrt(abar_{t-1}) u'`` with ``abar_0 = 1`` (``sigma_0 = 0``: the last step returns V_0).

Units: the scheduler works in [-1, 1] units, where noise levels are ``s = 2 sigma`` with ``sigma`` the
[0, 1]-unit levels of :mod:`inrd.schedules` (eq. 14); the relaxation only involves ratios of levels
and gamma scales with them, so ``rho`` is unit-free and ``gamma^{[-1,1]} = 2 gamma``. ``set_timesteps``
resolves the run once into :attr:`INRDScheduler.scheme`, the :class:`inrd.relaxations.Scheme` (sigmas,
rhos, gammas in [0, 1] units) of the grid :func:`inrd.schedules.prune_indices` makes of the model's
training levels: the object :func:`inrd.sample` runs, so the scheduler in a pipeline's loop and
``inrd.sample(EpsDenoiser(...), scheduler.scheme)`` give the same samples (``tests/test_diffusers.py``).

Against diffusers:

* ``rho="canonical"`` is ``DDPMScheduler(timestep_spacing="trailing")`` (also on custom
  ``set_timesteps(timesteps=[...])``). ``rho="ddim"`` and ``ddim_eta=eta`` are
  ``DDIMScheduler(eta, timestep_spacing="trailing")`` **only when the step count n divides T**: DDIM
  steps back by ``T // n`` timesteps, INRD to the previous level of its grid; otherwise the two differ
  (n = 7: 999 -> 857 for DDIM, 999 -> 856 here). ``rho="ind"`` (``rho = 1``) and any other relaxation
  are new. Timesteps are the trailing grid of ``prune`` (or the given custom ones); a config's
  ``timestep_spacing``/``steps_offset`` are ignored.
* The relaxation is the config key ``relaxation`` (``rho=`` is accepted as an argument): EDM's
  schedulers, which diffusers lists as compatible, use ``rho`` for Karras' exponent.
* ``step(..., eta=...)``: the relaxation is fixed by ``set_timesteps``; the ``eta = 0`` that
  ``DDIMPipeline`` and the Stable Diffusion pipelines pass by default is accepted (diffusers documents
  it as ignored by non-DDIM schedulers), another eta than ``ddim_eta`` is a ValueError. ``DDIMPipeline``'s
  constructor turns any scheduler into a ``DDIMScheduler``; assign ``pipe.scheduler = INRDScheduler...``
  after building it.
* Saving: ``pipe.save_pretrained(folder)`` records the scheduler as ``["inrd.diffusers", "INRDScheduler"]``;
  diffusers does not import modules a folder names, so load it after ``import inrd.diffusers`` or with
  ``from_pretrained(folder, scheduler=INRDScheduler.from_pretrained(folder, subfolder="scheduler"))``.
* ``gamma_t`` is fixed by ``rho``; a model's learned variance channels are dropped. The start is
  the pipeline's ``x_T ~ N(0, I)`` (``init_noise_sigma = 1``), as DDPM: noise ``1 / sqrt(abar_T)``
  in the VE frame instead of the paper's ``s_T`` (relative difference ``abar_T / 2``).
* Clipping: ``clip_sample`` clips ``D(u)`` to ``[-clip_sample_range, clip_sample_range]`` ([-1, 1]
  units). It is off by default (the paper's D has no clamp), but a DDPM config usually carries
  ``clip_sample=True`` and ``from_config`` keeps it: pass ``clip_sample=False`` for the paper's scheme.
  ``use_clipped_model_output=False`` (default) keeps the raw eps in the direction term, diffusers'
  semantics (``DDIMScheduler``; ``inrd.sample(clip="x0")``): ``V = clip(D) + (1 - rho)(u - D)``.
  ``True`` recomputes eps from the clipped x0, i.e. relaxes the clipped denoiser,
  ``V = (1 - rho) u + rho clip(D)`` (``inrd.sample(clip="denoised")``), which is what
  ``DDPMScheduler(clip_sample=True)`` amounts to. ``pred_original_sample`` is the (clipped) ``D(u)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional, Union

import diffusers
import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, FrozenDict, register_to_config
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers, SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from . import relaxations, schedules
from .denoisers.eps import clean_estimate
from .sampler import inrd_step
from .scheduler_inputs import check_floating, integral_timesteps, own_channels, relaxation_for_config

__all__ = ["INRDScheduler", "INRDSchedulerOutput"]

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
#: see INRDScheduler._compatibles
COMPATIBLES = [e.name for e in KarrasDiffusionSchedulers]


@dataclass
class INRDSchedulerOutput(BaseOutput):
    """``prev_sample``: x_{t-1} (VP frame, [-1, 1] units); ``pred_original_sample``: D(u), the x0 estimate."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class INRDScheduler(SchedulerMixin, ConfigMixin):
    """Iterative noising / relaxed denoising (paper eq. 13, 20) on the pruned training grid of a
    diffusers model; see the module docstring for the step, the units and the clip semantics.

    Args:
        num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas: the training noise
            schedule, as in ``DDPMScheduler`` (its ``betas``, ``alphas`` and ``alphas_cumprod`` are computed
            by diffusers itself; ``alphas_cumprod`` is kept in float64).
        prediction_type: what the network predicts: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        relaxation: the paper's rho: ``"canonical"`` (= DDPM), ``"ind"`` (rho = 1), ``"ddim"`` (gamma = 0),
            a number in [0, 1], or a per-step tensor of length ``n + 1`` for ``set_timesteps(n)`` (``rho[k]``
            for pruned level k = 1..n; ``rho[0]`` unused). ``rho=`` is the same argument under the paper's
            name; the config stores it as ``relaxation``, a key no diffusers scheduler uses (EDM's
            ``rho`` is Karras' exponent, another quantity).
        ddim_eta: DDIM's eta instead of a relaxation: ``rho = relaxations.ddim_eta(sigmas, eta)`` on the
            grid (0 is ``"ddim"``, 1 ``"canonical"``); the same samples as ``DDIMScheduler(eta=...)``
            wherever DDIM steps along the grid (module docstring).
        clip_sample, clip_sample_range, use_clipped_model_output: clip ``D(u)``; see the module docstring.
        timestep_power, timestep_first: the spacing of the pruned grid (:func:`inrd.schedules.prune_indices`):
            levels ``a_1 = timestep_first``, ``a_n = T`` and ``a_k`` spaced as ``((k - 1) / (n - 1))^power``;
            the defaults (1.0, None) are diffusers' "trailing" spacing, power > 1 puts more steps at low noise.
        thresholding, rescale_betas_zero_snr: not supported (a ``True`` from a config raises ValueError).
    """

    # diffusers' DDPM-family schedulers: each one's config round-trips through INRDScheduler's and back
    # (tests/diffusers_conformance), since no INRD key means something else to any of them
    _compatibles = COMPATIBLES
    _deprecated_kwargs = ["rho"]  # not deprecated: the paper's name of ``relaxation``, passed through from_config
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: Optional[Union[np.ndarray, list]] = None,
        prediction_type: Literal["epsilon", "v_prediction", "sample"] = "epsilon",
        relaxation: Union[str, float, list, torch.Tensor] = "canonical",
        ddim_eta: Optional[float] = None,
        clip_sample: bool = False,
        clip_sample_range: float = 1.0,
        use_clipped_model_output: bool = False,
        timestep_power: float = 1.0,
        timestep_first: Optional[int] = None,
        thresholding: bool = False,
        rescale_betas_zero_snr: bool = False,
        **kwargs,
    ):
        if set(kwargs) - {"rho"}:
            raise TypeError(f"INRDScheduler got unexpected arguments {', '.join(sorted(set(kwargs) - {'rho'}))}.")
        if "rho" in kwargs:  # the paper's name; it wins over the config's default relaxation
            relaxation = kwargs.pop("rho")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {prediction_type!r}; use one of {', '.join(PREDICTION_TYPES)}.")
        if thresholding:
            raise ValueError("INRDScheduler does not implement dynamic thresholding; pass thresholding=False (clip_sample clips).")
        if rescale_betas_zero_snr:
            raise ValueError("rescale_betas_zero_snr makes abar_T = 0, i.e. sigma_T = inf, which INRD cannot start from; pass rescale_betas_zero_snr=False.")
        if not clip_sample_range > 0:
            raise ValueError(f"clip_sample_range must be > 0, got {clip_sample_range}.")
        if ddim_eta is not None and (isinstance(ddim_eta, bool) or not isinstance(ddim_eta, (int, float)) or not 0 <= ddim_eta <= 1):
            raise ValueError(f"ddim_eta must be a number in [0, 1] (0: DDIM, 1: DDPM) or None, got {ddim_eta!r}.")
        try:  # the training schedule exactly as diffusers computes it (float32), then float64 from here on
            train = diffusers.DDPMScheduler(
                num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
                beta_schedule=beta_schedule, trained_betas=trained_betas,
            )
        except NotImplementedError:
            raise ValueError(f"unknown beta_schedule {beta_schedule!r}; use linear, scaled_linear, squaredcos_cap_v2 or sigmoid.") from None
        if train.betas.numel() != num_train_timesteps:
            raise ValueError(f"trained_betas has {train.betas.numel()} entries but num_train_timesteps is {num_train_timesteps}; "
                             f"pass num_train_timesteps={train.betas.numel()}.")
        if not bool(((train.betas > 0) & (train.betas < 1)).all()):
            raise ValueError(f"the betas must lie in (0, 1), got {train.betas.min().item():.4g}..{train.betas.max().item():.4g} "
                             f"(beta_start={beta_start}, beta_end={beta_end}, {beta_schedule}); a beta >= 1 has no noise level.")
        if not bool((train.alphas_cumprod > 0).all()):
            raise ValueError(f"this schedule (beta_start={beta_start}, beta_end={beta_end}, {beta_schedule}, T={num_train_timesteps}) reaches "
                             f"alphabar = 0 in float32: sigma_T = inf, which INRD cannot start from; use smaller betas or fewer timesteps.")
        self.betas, self.alphas = train.betas, train.alphas  # float32, as every diffusers scheduler holds them
        self.alphas_cumprod = train.alphas_cumprod.to(torch.float64)  # alphas_cumprod[k - 1] = abar at paper level k
        self.sigmas_train = schedules.sigmas_from_alphas_cumprod(self.alphas_cumprod)  # [0, 1] units, eq. (14)
        # the relaxation is always recorded as given: a rho= never counts as "default" (from_pretrained
        # would otherwise skip it and load "canonical")
        self.register_to_config(relaxation=relaxation_for_config(relaxation))
        # (nor does the **kwargs that carries rho=: diffusers lists it, and a reloaded config would differ)
        internal = dict(self._internal_dict)
        defaults = [k for k in internal.pop("_use_default_values", []) if k not in ("relaxation", "kwargs")]
        self._internal_dict = FrozenDict({**internal, **({"_use_default_values": defaults} if defaults else {})})
        if ddim_eta is not None and self.config.relaxation != "canonical":
            raise ValueError(f"give either ddim_eta or a relaxation (got {self.config.relaxation!r}), not both.")
        if isinstance(self.config.relaxation, (str, float)):
            relaxations.relaxation(self.sigmas_train, self.config.relaxation)  # unknown name / out of [0, 1]: fail now
        self.init_noise_sigma = 1.0
        self.num_inference_steps: Optional[int] = None
        self.custom_timesteps = False
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1)

    # ------------------------------------------------------------------------------------------------

    def set_timesteps(self, num_inference_steps: Optional[int] = None, device: Union[str, torch.device, None] = None,
                      timesteps: Optional[list] = None) -> None:
        """Prune the T training levels to ``n = num_inference_steps`` (:func:`inrd.schedules.prune_indices`,
        by default diffusers' "trailing" spacing) or to the given network ``timesteps`` (strictly descending
        integers in 0..T-1, as ``DDPMScheduler``'s custom timesteps), and resolve the run once into
        :attr:`scheme`, the :class:`inrd.relaxations.Scheme` (sigma_k, rho_k, gamma_k; [0, 1] units) of
        that grid. ``timesteps`` land on ``device``. Errors: one-line ValueError."""
        T = self.config.num_train_timesteps
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError("set_timesteps takes num_inference_steps or timesteps=[...] (descending training timesteps), exactly one.")
        if timesteps is not None:
            idx = self._custom_levels(timesteps)
            n = idx.numel() - 1
        else:
            idx = schedules.prune_indices(T, num_inference_steps, self.config.timestep_power, self.config.timestep_first)
            n = int(num_inference_steps)
        sigmas = self.sigmas_train[idx]  # sigma'_k = sigma_{a_k}
        try:
            self.scheme = relaxations.scheme(sigmas, self._relaxation(sigmas))
        except ValueError as e:
            raise ValueError(f"INRDScheduler with {n} steps: {e}") from None
        self.num_inference_steps = n
        self.custom_timesteps = timesteps is not None
        self.level_indices = idx
        self.rhos = self.scheme.rhos
        self.gammas = 2.0 * self.scheme.gammas  # [-1, 1] units
        abar = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])  # abar at level a_k
        self.abar = abar[idx]  # abar[0] = 1: sigma_0 = 0
        self.timesteps = (idx[1:] - 1).flip(0).to(device)  # network timesteps a_k - 1, k = n..1

    def _custom_levels(self, timesteps) -> torch.Tensor:
        """Levels ``[0, a_1, ..., a_n]`` of user-given network timesteps ``a_k - 1`` (descending)."""
        T = self.config.num_train_timesteps
        t = integral_timesteps(timesteps, "timesteps").reshape(-1)
        if t.numel() == 0:
            raise ValueError("timesteps is empty; give at least one training timestep, e.g. [999, 500, 0].")
        if not (0 <= int(t.min()) and int(t.max()) < T):
            raise ValueError(f"timesteps must be training timesteps in 0..{T - 1}, got {t.min().item()}..{t.max().item()}.")
        if (t[1:] >= t[:-1]).any():
            raise ValueError(f"timesteps must be strictly descending (the order the pipeline runs them), got {t.tolist()}.")
        return torch.cat([torch.zeros(1, dtype=torch.int64), (t + 1).flip(0)])

    def _relaxation(self, sigmas: torch.Tensor):
        """The relaxation of the config on the grid ``sigmas``, in the form :func:`inrd.relaxations.scheme` takes."""
        if self.config.ddim_eta is not None:
            return relaxations.ddim_eta(sigmas, self.config.ddim_eta)
        rho = self.config.relaxation
        return torch.tensor([math.nan] + rho[1:], dtype=torch.float64) if isinstance(rho, list) else rho

    @classmethod
    def from_config(cls, config=None, return_unused_kwargs=False, **kwargs):
        """diffusers' ``from_config``; a config file saved before the relaxation had its own key holds it as
        ``rho``, which diffusers would drop (EDM, a compatible, uses ``rho`` for Karras' exponent)."""
        if isinstance(config, dict) and config.get("_class_name") == cls.__name__ and "rho" in config and "relaxation" not in config:
            config = {**{k: v for k, v in config.items() if k != "rho"}, "relaxation": config["rho"]}
        return super().from_config(config, return_unused_kwargs, **kwargs)

    def previous_timestep(self, timestep) -> torch.Tensor:
        """The network timestep the step at ``timestep`` goes to (the next entry of :attr:`timesteps`), -1 after the last."""
        k = self._level(timestep)
        return torch.tensor(-1) if k == 1 else self.timesteps[self.num_inference_steps - k + 1]

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        """The network takes the VP iterate unchanged."""
        return sample

    def _level(self, timestep) -> int:
        """Pruned level k (paper t = k) of a network timestep of the current grid."""
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps(n) before step().")
        t = integral_timesteps(timestep, "timestep").reshape(-1)
        if t.numel() != 1:
            raise ValueError(f"step() takes one timestep for the whole batch, got {t.numel()} ({t.tolist()[:4]}...); use an entry of scheduler.timesteps.")
        t = int(t)
        where = torch.nonzero(self.timesteps.cpu() == t)
        if where.numel() == 0:
            raise ValueError(f"timestep {t} is not on the {self.num_inference_steps}-step grid {self.timesteps.tolist()}; use scheduler.timesteps.")
        return self.num_inference_steps - int(where[0])

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Union[int, torch.Tensor],
        sample: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        return_dict: bool = True,
        *,
        eta: Optional[float] = None,
        use_clipped_model_output: Optional[bool] = None,
    ) -> Union[INRDSchedulerOutput, tuple]:
        """One INRD step x_t -> x_{t-1} (module docstring, steps 1-4); Z is drawn with ``generator``
        exactly as ``DDPMScheduler`` draws it, and only where gamma_{t-1} > 0.

        ``eta`` and ``use_clipped_model_output`` are what ``DDIMPipeline`` and the Stable Diffusion
        pipelines pass. The relaxation is resolved by ``set_timesteps`` (:attr:`scheme`): ``eta`` must be
        None, 0 (those pipelines' default, which diffusers documents as ignored by every scheduler but
        DDIM) or the scheduler's own ``ddim_eta``; any other value is a ValueError saying how to build the
        scheduler with it. ``use_clipped_model_output`` (None: the config's) applies when ``clip_sample``."""
        if eta is not None and eta != 0 and eta != self.config.ddim_eta:
            raise ValueError(
                f"INRDScheduler fixes its relaxation in set_timesteps and cannot take eta={eta} per step; build it "
                f"with INRDScheduler.from_config(pipe.scheduler.config, ddim_eta={eta}) (DDIM's eta as an INRD relaxation)."
            )
        check_floating(sample, "sample")
        check_floating(model_output, "model_output")
        k = self._level(timestep)
        model_output = own_channels(model_output, sample)
        a, a_prev = float(self.abar[k]), float(self.abar[k - 1])
        s = math.sqrt((1.0 - a) / a)  # noise level of u in [-1, 1] units
        rho, gamma = float(self.rhos[k]), float(self.gammas[k - 1])

        u = sample * (1.0 / math.sqrt(a))  # VE iterate U_t
        d = clean_estimate(self.config.prediction_type, u, model_output, s, math.sqrt(a))  # D(u), eq. (15)
        clipped = self.config.use_clipped_model_output if use_clipped_model_output is None else bool(use_clipped_model_output)
        v, d = self._relax(u, d, rho, float(self.scheme.sigmas[k]), clipped)
        if gamma > 0:
            z = randn_tensor(model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype)
            v = torch.add(v, z, alpha=gamma)  # U_{t-1} = V_{t-1} + gamma_{t-1} Z, as inrd_step noises
        prev = v * math.sqrt(a_prev)
        if not return_dict:
            return prev, d
        return INRDSchedulerOutput(prev_sample=prev, pred_original_sample=d)

    def _relax(self, u: torch.Tensor, d: torch.Tensor, rho: float, sigma: float, clipped: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(V_{t-1}, pred_original_sample)``: the relaxation of :func:`inrd.sampler.inrd_step` (eq. 13, with its
        clip modes) applied to the D(u) the pipeline's network gave; ``sigma`` in [0, 1] units."""
        given = lambda *_: d  # noqa: E731  D(u) is already computed from the model output
        if not self.config.clip_sample:
            return inrd_step(given, u, None, sigma, rho, 0.0)[2], d
        # inrd_step clips to [0, 1]: relax in the frame y = (x + r) / 2r where [-r, r] is [0, 1] (the
        # relaxation is affine-equivariant; the frame change costs a few ulps of |u| + r)
        r = self.config.clip_sample_range
        mode = "denoised" if clipped else "x0"  # relax the clipped D / keep raw eps
        v = inrd_step(lambda *_: (d + r) / (2 * r), (u + r) / (2 * r), None, sigma, rho, 0.0, mode)[2]
        return v * (2 * r) - r, d.clamp(-r, r)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor) -> torch.Tensor:
        """Forward process ``sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise`` (VP frame), as ``DDPMScheduler``."""
        check_floating(original_samples, "original_samples")
        check_floating(noise, "noise")
        if noise.shape != original_samples.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)} but original_samples {tuple(original_samples.shape)}; draw the noise like the samples.")
        T = self.config.num_train_timesteps
        t = integral_timesteps(timesteps, "timesteps").reshape(-1)
        if t.numel() and not (0 <= int(t.min()) and int(t.max()) < T):
            raise ValueError(f"timesteps must be training timesteps in 0..{T - 1}, got {t.min().item()}..{t.max().item()}.")
        if t.numel() not in (1, original_samples.shape[0]):
            raise ValueError(f"add_noise takes one timestep or one per sample ({original_samples.shape[0]}), got {t.numel()}.")
        abar = self.alphas_cumprod.to(original_samples.device)[t.to(original_samples.device)]
        shape = (-1,) + (1,) * (original_samples.ndim - 1)
        sa = abar.sqrt().to(original_samples.dtype).reshape(shape)
        sb = (1.0 - abar).sqrt().to(original_samples.dtype).reshape(shape)
        return sa * original_samples + sb * noise

    def __len__(self) -> int:
        return self.config.num_train_timesteps
