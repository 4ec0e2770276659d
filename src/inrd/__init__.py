"""inrd: diffusion sampling as iterative noising / relaxed denoising (Leclaire, Guez, Galerne 2025).

    V_{t-1} = D^{rho_t}_{sigma_t}(V_t + gamma_t Z_t)

Images are in [0, 1]; noise levels ``sigma`` are in the same units.
"""

from . import schedules
from .noise import PerSampleNoise, sample_seed
from .sampler import SamplingDiverged, Step, inrd_step, sample

__version__ = "0.1.0"
__all__ = ["sample", "inrd_step", "schedules", "Step", "PerSampleNoise", "sample_seed", "SamplingDiverged", "__version__"]
