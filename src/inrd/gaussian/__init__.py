"""Closed-form analysis of INRD on Gaussian data.

For data ``X ~ N(m, C)`` the exact MMSE denoiser is linear (paper eq. 16):
``D*_sigma(u) = m + C (C + sigma^2 I)^{-1} (u - m)``. In an orthonormal eigenbasis of C every
coordinate evolves on its own. For one coordinate with eigenvalue ``lam`` and data mean ``m``, write

    a_t = lam / (lam + sigma_t^2)          (Wiener gain of D*_{sigma_t})
    c_t = 1 - rho_t + rho_t a_t            (gain of the relaxed denoiser D^{rho_t}, eq. 13)

then one INRD step ``V_{t-1} = D^{rho_t}_{sigma_t}(V_t + gamma_t Z_t)`` reads

    V_{t-1} - m = c_t (V_t - m + gamma_t Z_t),

so from a Gaussian start ``V_T = init + init_std Z`` the law of ``V_0`` is Gaussian with, per coordinate,

    e_{t-1} = c_t e_t,   v_{t-1} = c_t^2 (v_t + gamma_t^2),   e_T = init - m,  v_T = init_std^2,

and ``E[V_0] = m + e_0``, ``Var V_0 = v_0``. The rho_t and gamma_t are those of
:func:`inrd.relaxations.relaxation` and :func:`inrd.relaxations.gammas`, the very numbers
:func:`inrd.sample` uses. Both laws being diagonal in the same basis, the Wasserstein-2 distance
between the law of ``V_0`` and the data law is

    W2^2 = sum_i (E[V_0]_i - m_i)^2 + sum_i (sqrt(v0_i) - sqrt(lam_i))^2      (bias^2 + spread^2).

Normalisations used in reports (:class:`W2`):

* ``relative = W2 / sqrt(sum_i lam_i)``: 0 is perfect, 1 is the distance from the data law to a point
  mass at its mean (what a sampler that only outputs the mean achieves);
* ``rms = W2 / sqrt(d)``: per-pixel root mean square, in [0, 1] image units (x 255 for grey levels).

Everything here is float64 numpy, vectorised over eigenvalues. Spectra (:class:`Spectrum`): arbitrary
eigenvalues, stationary power-law fields (``1/f^alpha`` on a periodic grid, the spectrum of
:class:`inrd.denoisers.StationaryGaussianDenoiser`), and the covariance of image patches of the
scikit-image photographs. :func:`best_subgrid` searches the n-step subgrid of a fine schedule with the
lowest W2.

Modules: :mod:`.law` (the law of V_0 and W2), :mod:`.spectrum` (data laws seen in their eigenbasis),
:mod:`.subgrid` (the best n-step subgrid of a fine schedule).
"""

from .law import W2, Law, output_law, w2, w2_distance
from .spectrum import Spectrum, power_law_grid, real_fourier_basis
from .subgrid import SubgridResult, best_subgrid, subgrid_w2

__all__ = [
    "Law",
    "W2",
    "output_law",
    "w2",
    "w2_distance",
    "Spectrum",
    "power_law_grid",
    "real_fourier_basis",
    "SubgridResult",
    "best_subgrid",
    "subgrid_w2",
]
