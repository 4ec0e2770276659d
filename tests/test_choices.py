"""inrd.choices: one spelling per choice, matched case-insensitively with '_' and '-' equivalent."""

import pytest

from inrd.choices import Algorithm, Clip, Schedule, ScheduleName, Task, choose, maybe_choose, names_of, parse_rho


def test_names_are_matched_case_insensitively_and_stored_in_one_spelling():
    assert choose("Super_Geometric", ScheduleName, "schedule") == "super-geometric"
    assert choose(" PNP_PGD ", Algorithm, "algorithm") == "pnp-pgd"
    assert choose("X0", Clip, "clip") == "x0"
    assert maybe_choose("Training", Schedule) == "training" and maybe_choose("training", ScheduleName) is None
    assert names_of(Schedule) == ("training", *names_of(ScheduleName))
    assert "super-resolution" in names_of(Task)


def test_unknown_names_are_one_line_errors_listing_the_choices():
    with pytest.raises(ValueError, match=r"^clip must be none, denoised or x0, got 'yes'\.$"):
        choose("yes", Clip, "clip")
    with pytest.raises(ValueError, match="got 3"):
        choose(3, Clip, "clip")


@pytest.mark.parametrize("given, parsed", [("IND", "ind"), ("Canonical", "canonical"), ("0.25", 0.25), (1, 1.0), (" 0 ", 0.0)])
def test_parse_rho_accepts_names_and_numbers_in_the_unit_interval(given, parsed):
    assert parse_rho(given) == parsed


@pytest.mark.parametrize("given, message", [
    ("banana", "unknown relaxation"), ("1.5", "outside \\[0, 1\\]"), ("nan", "outside"), (-0.1, "outside"),
    (True, "rho must be"), (0.5j, "complex"), (None, "rho must be"),
])
def test_parse_rho_refuses_everything_else_in_one_line(given, message):
    with pytest.raises(ValueError, match=message):
        parse_rho(given)
