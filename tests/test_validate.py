"""inrd.validate: the shared input checks give one-line errors that name the problem."""

import pytest
import torch

from inrd.validate import check_image, sigma_vector


def test_sigma_vector_values():
    x = torch.zeros(2, 1, 3, 3, dtype=torch.float64)
    assert torch.equal(sigma_vector(0.1, x), torch.tensor([0.1, 0.1], dtype=torch.float64))
    assert torch.equal(sigma_vector(torch.tensor([[0.1], [0.2]]), x), torch.tensor([0.1, 0.2]).double())


@pytest.mark.parametrize(
    "sigma, error, match",
    [("0.1", TypeError, "real number"), (None, TypeError, "real number"), (True, TypeError, "real number"),
     (object(), TypeError, "real number"), (torch.tensor(0.1 + 0j), TypeError, "real number"),
     (-0.1, ValueError, ">= 0"), (float("nan"), ValueError, "finite"), ([0.1, 0.2, 0.3], ValueError, "one value per image")],
)
def test_sigma_vector_errors(sigma, error, match):
    with pytest.raises(error, match=match) as e:
        sigma_vector(sigma, torch.zeros(2, 1, 3, 3))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "x, error, match",
    [(torch.zeros(3, 3).numpy(), TypeError, "torch.Tensor"), (torch.zeros(3, 3), ValueError, r"\(B, C, H, W\)"),
     (torch.zeros(1, 1, 0, 3), ValueError, "empty"), (torch.zeros(1, 1, 3, 3, dtype=torch.uint8), ValueError, "floating"),
     (torch.full((1, 1, 2, 2), float("inf")), ValueError, "NaN or infinite"), (torch.zeros(1, 3, 2, 2), ValueError, "3 channels but 1")],
)
def test_check_image_errors(x, error, match):
    with pytest.raises(error, match=match):
        check_image(x, channels=1)
