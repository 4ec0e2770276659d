"""inrd: diffusion sampling as iterative noising / relaxed denoising (Leclaire, Guez, Galerne 2025).

    V_{t-1} = D^{rho_t}_{sigma_t}(V_t + gamma_t Z_t)

Images are in [0, 1]; noise levels ``sigma`` are in the same units.
"""

from . import schedules
from .sampler import PerSampleNoise, SamplingDiverged, Step, sample

__version__ = "0.1.0"
__all__ = ["sample", "schedules", "Step", "PerSampleNoise", "SamplingDiverged", "__version__"]
