"""What a restoration run will do, decided once: the user's :class:`RestoreOptions` (``inrd restore``) or
:class:`DeblurOptions` (``inrd deblur``) become a frozen :class:`RestorationPlan` / :class:`DeblurPlan`: the
operator A, the noise level nu and how it was obtained, the algorithm and its parameters, the denoiser.

Every check that needs no model happens here, before a model is loaded or a file written: the options one by
one (construction), then what depends on the image: its size and the memory the run needs (read from the
file's header, before the pixels are decoded), the kernel or mask against it, the noise level against the
algorithm's levels. :mod:`inrd.restoration.workflow` runs a plan into a run folder.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Optional, Union

from .. import memory
from ..choices import Algorithm, Boundary, Task, choose
from ..validate import check_count, check_device, check_index, check_positive
from .common import check_noise_level
from .restore import DEFAULT_ALGORITHM, DEFAULT_PAD, FIXED_LEVEL, SAMPLING

__all__ = ["RestoreOptions", "DeblurOptions", "RestorationPlan", "DeblurPlan", "image_header", "check_restore_memory",
           "NETWORK_BYTES_PER_PIXEL", "KERNEL_TASKS", "DEFAULT_BOUNDARY", "KNOWN_SIGMA_RANGE", "LEVELS_TO_NU", "check_upper_level"]

#: tasks whose operator has a blur kernel
KERNEL_TASKS: tuple[Task, ...] = ("deblur", "super-resolution")

#: the boundary model of their blur by default: the unknown boundary of a photograph, blurred as part of a
#: larger scene (on photographs blurred before cropping: 30.52 dB against 19.22 for "periodic",
#: docs/real_photographs.md)
DEFAULT_BOUNDARY: Boundary = "valid"

#: peak memory of one denoiser call per pixel of its input and per image (bytes, float32), by channel count,
#: for the shipped networks, known before they are loaded: 90 % of the peak resident memory measured for one
#: call (FFDNet on 1024 x 1024: 200 bytes gray, 319 RGB; inrd-small on 512 x 512: 2130), so the estimate
#: stays below what a run takes
NETWORK_BYTES_PER_PIXEL = {"ffdnet": {1: 180, 3: 287}, "inrd-small": {1: 1917, 3: 1917}}

#: image-sized float64 buffers an algorithm holds at once per image and channel, beside the network (the
#: observation, the iterates, the FFTs of a periodic operator's proximal map, the sampler's noise and
#: relaxation): just under what was measured with FFDNet (bytes per pixel of the run's peak, less the
#: network's: HQS 28 denoising, 70 deblurring; inrd-posterior 60)
_BUFFERS = {"sampling": 7, "periodic": 8, "other": 3}


def _device(value) -> str:
    """``--device`` checked by :func:`inrd.validate.check_device`, its advice in the command line's words."""
    try:
        return str(check_device(value))
    except ValueError as e:
        raise ValueError(str(e).replace("device='cpu'", "--device cpu")) from None


def _noise_level(value) -> Union[float, str]:
    """``--noise-level`` as ``"auto"`` or a checked nu."""
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return "auto"
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"--noise-level must be a number > 0 or 'auto', got {value!r}.") from None
    return check_noise_level(value, "--noise-level")


#: the trained range of the shipped networks by registry name ([0, 1] units), known before they are loaded
#: (the loaded network's ``sigma_range``, checked again once it is loaded)
KNOWN_SIGMA_RANGE = {"ffdnet": (0.0, 75 / 255)}

#: algorithms that run the denoiser at levels down to nu (HQS from max(49/255, nu), the posterior sampler from
#: max(POSTERIOR_SIGMA_MAX, nu)): nu must be inside the denoiser's trained range
LEVELS_TO_NU: tuple[Algorithm, ...] = ("hqs", "inrd-posterior")


def check_upper_level(nu: float, algorithm: Algorithm, how: str, denoiser: str, sigma_range=None) -> None:
    """A noise level above the trained range ``sigma_range`` of ``denoiser`` (a registry name; None: its
    :data:`KNOWN_SIGMA_RANGE`, else unknown and nothing refused), for an algorithm of :data:`LEVELS_TO_NU`:
    refused naming ``--noise-level`` and the range."""
    sigma_range = KNOWN_SIGMA_RANGE.get(str(denoiser).lower()) if sigma_range is None else sigma_range
    if algorithm not in LEVELS_TO_NU or sigma_range is None:
        return
    lo, hi = float(sigma_range[0]), float(sigma_range[1])
    if nu > hi * (1 + 1e-6):
        raise ValueError(f"--noise-level {nu:.4g} ({how}) is above the range {denoiser} was trained for, [{lo:.4g}, {hi:.4g}] "
                         f"([0, 1] units), and {algorithm} runs it at levels down to nu; use --algorithm pnp-pgd or gs-pnp "
                         f"(their level is capped at the range's top), another --denoiser, or check the level (an 8-bit level "
                         f"divided by 255).")


@dataclass(frozen=True)
class RestoreOptions:
    """Every choice of ``inrd restore`` (same names, same units: noise levels in [0, 1] image units).
    ``None`` means the algorithm's or the task's default. Construction checks each field and how they
    combine (a mask only for inpainting, ...); what depends on the image is checked by
    :func:`inrd.restoration.workflow.prepare_restore`."""

    task: Task
    observed: str
    noise_level: Union[float, str] = "auto"  # a number, or "auto": estimated from the observation
    kernel: Optional[str] = None  # "gaussian:STD[:SIZE]" or a .npy / .txt file
    normalize_kernel: bool = False
    mask: Optional[str] = None
    factor: int = 2
    truth: Optional[str] = None
    algorithm: Optional[Algorithm] = None
    denoiser: str = "ffdnet"
    weights: Optional[str] = None
    iters: Optional[int] = None  # steps of inrd-posterior
    samples: int = 3
    sigma_denoiser: Optional[float] = None
    seed: int = 0
    device: str = "cpu"
    boundary: Optional[Boundary] = None  # deblur / super-resolution; None: DEFAULT_BOUNDARY

    def __post_init__(self):
        task = choose(self.task, Task, "--task")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (normalising a frozen dataclass)
        set_("task", task)
        set_("noise_level", _noise_level(self.noise_level))
        if self.algorithm is not None:
            set_("algorithm", choose(self.algorithm, Algorithm, "--algorithm"))
        set_("iters", check_count(self.iters, "--iters"))
        set_("samples", check_count(self.samples, "--samples"))
        set_("seed", check_index(self.seed, "--seed"))
        set_("sigma_denoiser", check_positive(self.sigma_denoiser, "--sigma-denoiser"))
        if self.factor not in (2, 4):
            raise ValueError(f"--factor must be 2 or 4, got {self.factor!r}.")
        set_("device", _device(self.device))
        if task == "inpaint" and not self.mask:
            raise ValueError("--task inpaint needs --mask (white = observed pixels, the observation's size).")
        if task == "deblur" and not self.kernel:
            raise ValueError("--task deblur needs --kernel (gaussian:STD or a .npy / .txt file).")
        if self.mask and task != "inpaint":
            raise ValueError(f"--mask does not apply to --task {task}.")
        if self.kernel and task not in KERNEL_TASKS:
            raise ValueError(f"--kernel does not apply to --task {task}.")
        if self.boundary is not None:
            if task not in KERNEL_TASKS:
                raise ValueError(f"--boundary does not apply to --task {task} (it has no blur); drop it.")
            set_("boundary", choose(self.boundary, Boundary, "--boundary"))
        if self.sigma_denoiser is not None and self.chosen_algorithm not in FIXED_LEVEL:
            raise ValueError("--sigma-denoiser is for pnp-pgd and gs-pnp (the other algorithms vary the level).")
        if isinstance(self.noise_level, float):
            check_upper_level(self.noise_level, self.chosen_algorithm, "given", self.denoiser)

    @property
    def chosen_algorithm(self) -> Algorithm:
        """``algorithm``, or the task's default (:data:`~inrd.restoration.DEFAULT_ALGORITHM`)."""
        return self.algorithm or DEFAULT_ALGORITHM[self.task]

    @property
    def chosen_boundary(self) -> Optional[Boundary]:
        """The blur's boundary model: ``boundary``, or :data:`DEFAULT_BOUNDARY` for deblurring and
        super-resolution; None for the tasks without a blur."""
        if self.task not in KERNEL_TASKS:
            return None
        return self.boundary or DEFAULT_BOUNDARY

    @property
    def kernel_spec(self) -> Optional[str]:
        """The kernel of the operator: ``kernel``, or for super-resolution ``gaussian:F/2`` by default."""
        if self.task == "super-resolution" and not self.kernel:
            return f"gaussian:{self.factor / 2:g}"
        return self.kernel

    @property
    def algorithm_options(self) -> dict:
        """The options the user gave to the algorithm, as :func:`~inrd.restoration.restore` takes them."""
        name, options = self.chosen_algorithm, {}
        if self.iters is not None:
            options["steps" if name in SAMPLING else "iters"] = self.iters
        if name in SAMPLING:
            options.update(samples=self.samples, seed=self.seed)
        if self.sigma_denoiser is not None:
            options["sigma_denoiser"] = self.sigma_denoiser
        return options


@dataclass(frozen=True)
class DeblurOptions:
    """Every choice of ``inrd deblur``: a known image, blurred and noised, restored by PnP-PGD or GS-PnP."""

    image: str = "astronaut"
    kernel: str = "gaussian:1.6"
    normalize_kernel: bool = False
    noise_level: float = 0.01
    denoiser: str = "ffdnet"
    weights: Optional[str] = None
    sigma_denoiser: Optional[float] = None
    iters: int = 100
    stepsize: Optional[float] = None  # tau in units of nu^2, pnp-pgd only
    algorithm: Algorithm = "pnp-pgd"
    pad: int = DEFAULT_PAD
    size: int = 256  # 0 keeps the image's size
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("noise_level", check_noise_level(self.noise_level, "--noise-level"))
        name = choose(self.algorithm, Algorithm, "--algorithm")
        if name not in FIXED_LEVEL:
            raise ValueError(f"--algorithm must be pnp-pgd or gs-pnp for inrd deblur (inrd restore runs the others), got {self.algorithm!r}.")
        set_("algorithm", name)
        set_("iters", check_count(self.iters, "--iters"))
        set_("pad", check_count(self.pad, "--pad", 0))
        set_("size", check_count(self.size, "--size", 0))
        set_("seed", check_index(self.seed, "--seed"))
        set_("sigma_denoiser", check_positive(self.sigma_denoiser, "--sigma-denoiser"))
        set_("stepsize", check_positive(self.stepsize, "--stepsize"))
        if name == "gs-pnp" and self.stepsize is not None:
            raise ValueError("--stepsize is for pnp-pgd; gs-pnp finds its step by backtracking.")
        set_("device", _device(self.device))


@dataclass(frozen=True)
class RestorationPlan:
    """A resolved ``inrd restore`` run: the operator of ``task``, nu and how it was obtained, the algorithm
    and the options it gets, the denoiser (registry name, weights) and the channel count it works on."""

    options: RestoreOptions
    operator: object  # an inrd.restoration.physics operator
    noise_level: float
    noise_level_method: str  # "given", or the estimator's noise_level.DESCRIPTIONS entry
    channels: int
    observed_shape: tuple
    algorithm_options: dict = field(default_factory=dict)

    @property
    def algorithm(self) -> Algorithm:
        return self.options.chosen_algorithm

    def record(self) -> dict:
        """The JSON-ready parameters that determine the outputs (the run folder's manifest)."""
        o = self.options
        return {"task": o.task, "observed": o.observed, "observed_shape": list(self.observed_shape),
                "noise_level": self.noise_level, "noise_level_method": self.noise_level_method, "operator": repr(self.operator),
                "kernel": o.kernel_spec, "boundary": o.chosen_boundary, "factor": o.factor, "mask": o.mask, "normalize_kernel": o.normalize_kernel,
                "algorithm": self.algorithm, "denoiser": o.denoiser, "weights": o.weights, "channels": self.channels,
                "seed": o.seed, "device": o.device}


@dataclass(frozen=True)
class DeblurPlan:
    """A resolved ``inrd deblur`` run: the blur, the denoiser level sigma and the image size."""

    options: DeblurOptions
    operator: object  # a PeriodicBlur
    sigma_denoiser: float
    channels: int

    def record(self) -> dict:
        o, k = self.options, self.operator.kernel
        return {"image": o.image, "size": o.size or None, "channels": self.channels, "kernel": o.kernel,
                "kernel_shape": list(k.shape), "kernel_sum": float(k.sum()), "noise_level": o.noise_level, "seed": o.seed,
                "denoiser": o.denoiser, "weights": o.weights, "sigma_denoiser": self.sigma_denoiser, "pad": o.pad,
                "algorithm": o.algorithm, "iters": o.iters, "device": o.device}


def image_header(spec: str) -> Optional[tuple[int, int, int]]:
    """``(channels, height, width)`` of an image file from its header, without decoding the pixels; None for a
    scikit-image sample name or a file PIL cannot open (:func:`inrd.io.load_image` then says why)."""
    from PIL import Image

    from ..io import SKIMAGE_IMAGES

    if spec in SKIMAGE_IMAGES:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the memory check judges the size
            with Image.open(spec) as im:
                w, h = im.size
                gray = im.mode in ("1", "L", "LA", "I", "F") or im.mode.startswith("I;16")
                return (1 if gray else 3), h, w
    except Exception:  # PIL raises many types for what it cannot open
        return None


def check_restore_memory(denoiser: str, channels: int, height: int, width: int, images: int, fix: str, device: str,
                         sampling: bool = False, pad: int = 0, blur: bool = False) -> None:
    """Refuse in one line a restoration of ``images`` images of ``channels x height x width`` (the restored size)
    whose memory estimate exceeds what is available: :data:`_BUFFERS` float64 image buffers per image and
    channel (a ``blur`` of another boundary counts as the periodic operators: its conjugate gradient holds
    x, r, p, M p, b and z, six image-sized buffers, beside the FFTs) plus, for a shipped network on the CPU,
    :data:`NETWORK_BYTES_PER_PIXEL` per pixel of its input (the image circularly padded by ``pad`` on each side)
    and image."""
    buffers = _BUFFERS["sampling" if sampling else "periodic" if pad or blur else "other"]
    need = buffers * 8 * channels * height * width * images
    if str(device).startswith("cpu"):  # on a GPU the network's memory is the GPU's
        per_pixel = NETWORK_BYTES_PER_PIXEL.get(str(denoiser).lower(), {}).get(channels, 0)
        need += per_pixel * (height + 2 * pad) * (width + 2 * pad) * images
    what = f"restoring {images} image(s) of {channels}x{height}x{width}"
    memory.require(need, what, fix)
