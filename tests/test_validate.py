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


def test_devices_that_cannot_hold_images_are_refused():
    from inrd.validate import check_device

    assert check_device("cpu").type == "cpu"
    for dev, message in (("meta", "cannot run inrd"), ("tpu", "unknown device"), ("cuda:7", "CUDA")):
        with pytest.raises(ValueError, match=message):
            check_device(dev)


def test_indices_are_integers_never_rounded():
    from inrd.validate import check_index

    assert check_index(3, "seed") == 3 and check_index(4.0, "seed") == 4
    for bad in (1.5, -1, True, "2", None):
        with pytest.raises(ValueError, match="seed must be >= 0"):
            check_index(bad, "seed")


def test_check_count_takes_integral_numbers_in_range_and_names_the_option():
    from inrd.validate import check_count

    assert check_count(None, "--iters") is None
    assert check_count(4.0, "--iters") == 4 and isinstance(check_count(4.0, "--iters"), int)
    assert check_count(0, "--pad", 0) == 0
    for bad in (0, 2.5, True, float("nan"), 1 + 0j, "3"):
        with pytest.raises(ValueError, match=r"^--iters must be an integer >= 1, got "):
            check_count(bad, "--iters")
    with pytest.raises(ValueError, match=r"^--steps must be an integer >= 1 and <= 10, got 11\.$"):
        check_count(11, "--steps", 1, 10)


def test_check_positive_refuses_zero_nan_inf_and_bools():
    from inrd.validate import check_positive

    assert check_positive(None, "--stepsize") is None
    assert check_positive(2, "--stepsize") == 2.0
    for bad in (0, -1.0, float("nan"), float("inf"), True, 1j):
        with pytest.raises(ValueError, match=r"^--stepsize must be a finite number > 0, got "):
            check_positive(bad, "--stepsize")
    with pytest.raises(ValueError, match=r"--sigma-min must be a finite noise level > 0 \(\[0, 1\] units\)"):
        check_positive(0.0, "--sigma-min", "a finite noise level > 0 ([0, 1] units)")
