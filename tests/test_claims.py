"""bnhelpers.analysis.claims.assert_claim: a notebook claim asserted and reported in one call."""

import numpy as np
import pytest

import bnhelpers as bh


def test_a_claim_that_holds_prints_its_report(capsys):
    err = 3e-9
    bh.assert_claim(err < 1e-7, f"relative error {err:.0e}")
    bh.assert_claim(np.float64(err) < 1e-7, "numpy comparisons give numpy booleans")
    assert capsys.readouterr().out == "relative error 3e-09\nnumpy comparisons give numpy booleans\n"


def test_a_claim_that_fails_raises_with_the_measured_value_and_prints_nothing(capsys):
    with pytest.raises(AssertionError, match=r"claim does not hold: accuracy 0.312"):
        bh.assert_claim(0.312 > 0.9, "accuracy 0.312")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("claim", "report", "message"),
    [
        (np.array([True, True]), "x", "claim must be a bool .* got ndarray"),
        ("err < 1e-7", "x", "claim must be a bool .* got str"),
        (1, "x", "claim must be a bool .* got int"),
        (True, 0.5, "report must be a str"),
    ],
)
def test_anything_but_a_bool_and_a_report_is_refused(claim, report, message):
    with pytest.raises(TypeError, match=message):
        bh.assert_claim(claim, report)
