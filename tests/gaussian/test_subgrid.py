"""The best n-step subgrid of a fine schedule (inrd.gaussian.subgrid): never worse than uniform pruning, a
local minimum checked with the exact law, scored with the sampler's own relaxation."""

import numpy as np
import pytest
import torch

from inrd import gaussian as G
from inrd import relaxations as R
from inrd import schedules as S


@pytest.mark.parametrize("rho", ["canonical", "ddim", "ind"])
def test_best_subgrid_beats_uniform_pruning(rho):
    spec = G.Spectrum.power_law(16).compress()
    fine = S.ddpm()
    res = G.best_subgrid(spec, fine, 8, rho)
    assert res.indices[0] == 0 and res.indices[-1] == 1000 and len(res.indices) == 9
    assert np.all(np.diff(res.indices) > 0)
    assert res.uniform.w2 == pytest.approx(spec.w2(S.prune(fine, 8), rho).w2, rel=1e-12)
    # the W2 it reports is the exact one (output_law) of the subgrid it returns ...
    assert res.w2.w2 == pytest.approx(spec.w2(fine[torch.as_tensor(res.indices)], rho).w2, rel=1e-12)
    assert res.w2.w2 < res.uniform.w2 and res.moves > 0
    # ... and a local minimum: no single index move lowers it (checked with output_law, not the fast path)
    for k in range(1, 8):
        for shift in (-1, 1):
            idx = res.indices.copy()
            idx[k] += shift
            if idx[k] in (idx[k - 1], idx[k + 1]):
                continue
            assert G.subgrid_w2(spec, fine, idx, rho).w2 >= res.w2.w2 * (1 - 1e-9)


@pytest.mark.parametrize("rho", ["canonical", "ddim", "ind", 0.7])
def test_subgrid_search_scores_candidates_with_the_samplers_rho(rho):
    """The search scores each candidate sigma_k with relaxations.step_relaxation on arbitrary (sigma_{t-1},
    sigma_t) pairs; on consecutive levels that is relaxations.relaxation, what inrd.sample uses, bit for bit."""
    fine = S.ddpm()
    idx = np.array([0, 3, 40, 41, 700, 1000])
    sub = fine[torch.as_tensor(idx)]
    pairs = R.step_relaxation(sub[:-1].numpy(), sub[1:].numpy(), rho)
    assert np.array_equal(pairs, R.relaxation(sub, rho)[1:].numpy())


def test_bad_inputs_raise_clear_value_errors():
    with pytest.raises(ValueError, match="relaxation"):
        G.best_subgrid(G.Spectrum.from_eigenvalues([0.1]), S.ddpm(), 5, torch.ones(1001))
    with pytest.raises(ValueError, match="steps must be"):
        G.best_subgrid(G.Spectrum.from_eigenvalues([0.1]), S.ddpm(), 0)
