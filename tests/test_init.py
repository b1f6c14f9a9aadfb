"""Tests for bnhelpers.engine.init: each scheme's standard deviation, the draws, and the checks."""

import numpy as np
import pytest

from bnhelpers.engine.init import check_init, draw_weights, weight_std


@pytest.mark.parametrize(
    ("init", "scale", "expected"),
    [("normal", 0.1, 0.1), ("normal", 1.0, 1.0), ("xavier", None, 1 / np.sqrt(50)), ("he", None, np.sqrt(2 / 50))],
)
def test_weight_std_is_the_formula_of_each_scheme(init, scale, expected):
    assert weight_std(init, 50, scale) == pytest.approx(expected, rel=1e-15)


def test_he_is_what_one_source_calls_xavier_over_two():
    """randn / sqrt(fan_in / 2), drawn from the same generator, is exactly the "he" draw."""
    fan_in = 72
    ours = draw_weights(np.random.default_rng(3), (fan_in, 40), fan_in, "he", dtype=np.float64)
    theirs = np.random.default_rng(3).standard_normal((fan_in, 40)) / np.sqrt(fan_in / 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-15)


@pytest.mark.parametrize(("init", "scale"), [("normal", 0.5), ("xavier", None), ("he", None)])
def test_draws_have_mean_zero_and_the_scheme_std(init, scale):
    fan_in = 100
    w = draw_weights(np.random.default_rng(0), (fan_in, 2_000), fan_in, init, scale, dtype=np.float64)
    std = weight_std(init, fan_in, scale)
    # 200,000 draws: the sample std is within 0.5% and the mean within 0.01 std, far beyond 4 standard errors.
    assert w.std() == pytest.approx(std, rel=5e-3)
    assert abs(w.mean()) < 0.01 * std


def test_the_same_seed_gives_the_same_weights_in_float32_and_float64():
    w32 = draw_weights(np.random.default_rng(7), (30, 20), 30, "xavier")
    w64 = draw_weights(np.random.default_rng(7), (30, 20), 30, "xavier", dtype=np.float64)
    assert w32.dtype == np.float32
    assert w64.dtype == np.float64
    np.testing.assert_array_equal(w32, w64.astype(np.float32))


@pytest.mark.parametrize(
    ("init", "scale", "message"),
    [
        ("kaiming", None, r"init must be one of \('normal', 'xavier', 'he'\), got 'kaiming'"),
        ("normal", None, "init='normal' needs a positive scale"),
        ("normal", 0.0, "init='normal' needs a positive scale"),
        ("normal", -0.1, "init='normal' needs a positive scale"),
        ("normal", float("nan"), "init='normal' needs a positive scale"),
        ("he", 0.1, "scale is only used with init='normal'"),
    ],
)
def test_bad_schemes_and_scales_are_refused_before_any_draw(init, scale, message):
    with pytest.raises(ValueError, match=message):
        check_init(init, scale)
    generator = np.random.default_rng(0)
    state = generator.bit_generator.state
    with pytest.raises(ValueError, match=message):
        draw_weights(generator, (3, 3), 3, init, scale)
    assert generator.bit_generator.state == state, "a refused draw must not advance the generator"
