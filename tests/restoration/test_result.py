import pytest

from inrd import restoration as R


def test_diagnose_rules():
    flat = [1.0] * 51
    # an oscillation (constant step, no growth) is "stalled"
    v, ev = R.diagnose([0.05] * 50, flat)
    assert v == "stalled" and ev["step_growth"] == pytest.approx(1.0) and ev["trend"] == pytest.approx(1.0)
    # a decaying residual that ends below tol is "converged"; the same decay stopped early is "stalled"
    r = [0.1 * 0.8**n for n in range(50)]  # 0.1 * 0.8^49 = 1.8e-6
    assert R.diagnose(r, flat)[0] == "converged"
    v, ev = R.diagnose(r[:20], flat[:21])
    assert v == "stalled" and "still decreasing" in ev["reason"]
    # steps that grow by more than the threshold after a minimum: "diverging"
    r = [0.01 * 0.9**n for n in range(25)] + [0.01 * 1.3**n for n in range(25)]
    assert R.diagnose(r, flat)[0] == "diverging"
    # PSNR evidence
    _, ev = R.diagnose([0.05] * 4, flat[:5], psnr=[20, 25, 24, 22])
    assert (ev["psnr_peak"], ev["psnr_peak_iter"], ev["psnr_drop"]) == (25, 2, 3)
