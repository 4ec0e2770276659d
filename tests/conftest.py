import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    # Reproducible tests; and the CI machine has 2 cores.
    torch.manual_seed(0)
    yield


def _random_gaussian(shape=(1, 4, 4), seed=0, scale=0.05):
    """A random Gaussian image law N(mean, cov) in [0, 1] units: mean around 0.5, SPD covariance whose
    eigenvalues spread over two decades (like natural images), returned as (mean, cov) in float64."""
    g = torch.Generator().manual_seed(seed)
    d = 1
    for n in shape:
        d *= n
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    lam = scale * torch.logspace(0, -2, d, dtype=torch.float64)
    cov = (q * lam) @ q.T
    mean = 0.5 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
    return mean, (cov + cov.T) / 2


@pytest.fixture
def gaussian_law():
    """Factory ``gaussian_law(shape=(1, 4, 4), seed=0, scale=0.05) -> (mean, cov)``."""
    return _random_gaussian
