"""batchnorm_forward / batchnorm_backward / batchnorm_backward_fast / batchnorm_fold."""

import copy

import numpy as np
import pytest
from helpers import assert_gradients_match
from hypothesis import given, settings
from hypothesis import strategies as st

from bnhelpers import (
    batchnorm_backward,
    batchnorm_backward_fast,
    batchnorm_fold,
    batchnorm_forward,
    gradient_check,
    rel_error,
)

BACKWARDS = [batchnorm_backward, batchnorm_backward_fast]


def make_inputs(seed, N, D, dtype=np.float64, loc=2.0, scale=3.0):
    """Data with per-feature offset and spread, and non-trivial gamma and beta."""
    rng = np.random.default_rng(seed)
    x = (loc + scale * rng.standard_normal((N, D))).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, D).astype(dtype) * rng.choice([-1, 1], D)
    beta = rng.standard_normal(D).astype(dtype)
    dout = rng.standard_normal((N, D)).astype(dtype)
    return x, gamma, beta, dout


@pytest.mark.parametrize("backward", BACKWARDS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("N", "D"), [(3, 1), (4, 3), (10, 7), (32, 5)])
def test_train_mode_gradients_match_finite_differences(backward, N, D):
    x, gamma, beta, dout = make_inputs(N * 100 + D, N, D)
    _out, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = backward(dout, cache)
    assert_gradients_match(
        lambda: batchnorm_forward(x, gamma, beta, {"mode": "train"})[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )


@pytest.mark.parametrize("backward", BACKWARDS, ids=lambda f: f.__name__)
def test_test_mode_gradients_match_finite_differences(backward):
    x, gamma, beta, dout = make_inputs(1, 6, 4)
    rng = np.random.default_rng(2)
    frozen = {"mode": "test", "running_mean": rng.standard_normal(4), "running_var": rng.uniform(0.5, 3, 4)}
    _out, cache = batchnorm_forward(x, gamma, beta, frozen)
    dx, dgamma, dbeta = backward(dout, cache)
    assert_gradients_match(
        lambda: batchnorm_forward(x, gamma, beta, dict(frozen))[0],
        {"x": x, "gamma": gamma, "beta": beta},
        {"x": dx, "gamma": dgamma, "beta": dbeta},
        dout,
    )


def test_gradient_check_detects_a_wrong_backward():
    x, gamma, beta, dout = make_inputs(3, 8, 4)
    _out, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    _dx, _dgamma, _dbeta = batchnorm_backward_fast(dout, cache)
    # The classic mistake: forgetting the mean and variance branches (dx = dout * gamma / std).
    naive_dx = dout * gamma / cache.std
    errors = gradient_check(
        lambda: batchnorm_forward(x, gamma, beta, {"mode": "train"})[0],
        {"x": x},
        {"x": naive_dx},
        dout,
    )
    assert errors["x"] > 1e-2


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(3, 40), D=st.integers(1, 12))
def test_staged_and_fast_backward_agree(seed, N, D):
    x, gamma, beta, dout = make_inputs(seed, N, D)
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    for staged, fast in zip(batchnorm_backward(dout, cache), batchnorm_backward_fast(dout, cache), strict=True):
        assert rel_error(staged, fast) <= 1e-10


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    N=st.integers(2, 40),
    D=st.integers(1, 12),
    eps=st.sampled_from([1e-5, 1e-2, 1.0]),
)
def test_dx_sums_to_zero_and_is_orthogonal_to_x_hat_up_to_eps(seed, N, D, eps):
    x, gamma, beta, dout = make_inputs(seed, N, D)
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": eps})
    dx, dgamma, _ = batchnorm_backward_fast(dout, cache)
    tol = 1e-12 * N * (np.abs(dx).sum(axis=0) + np.abs(gamma / cache.std * dgamma))
    # Shifting a whole feature does not change BN's output: sum_i dx_i = 0 exactly.
    assert np.all(np.abs(dx.sum(axis=0)) <= tol)
    # Scaling a feature changes the output only through eps:
    # sum_i dx_i * x_hat_i = gamma * dgamma * eps / (var + eps)**1.5, which is 0 when eps = 0.
    expected = gamma * dgamma * eps / (cache.var + eps) ** 1.5
    assert np.all(np.abs((dx * cache.x_hat).sum(axis=0) - expected) <= tol)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    N=st.integers(2, 30),
    D=st.integers(1, 8),
    log_a=st.floats(-3, 3),
    c=st.floats(-100, 100),
)
def test_output_is_invariant_to_positive_affine_change_of_each_feature(seed, N, D, log_a, c):
    x, gamma, beta, _ = make_inputs(seed, N, D)
    rng = np.random.default_rng(seed)
    a = np.exp(log_a) * rng.uniform(0.5, 2.0, D)  # a different positive scale per feature
    shift = c * rng.uniform(-1, 1, D)
    # eps is the only thing that breaks exact invariance; make it negligible
    # (1e-12 was not: scaled by a = e^-3, two close samples have a variance near it).
    out1, _ = batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": 1e-300})
    out2, _ = batchnorm_forward(a * x + shift, gamma, beta, {"mode": "train", "eps": 1e-300})
    np.testing.assert_allclose(out1, out2, rtol=1e-7, atol=1e-7)


def test_train_output_has_mean_beta_and_std_abs_gamma():
    x, gamma, beta, _ = make_inputs(4, 256, 6)
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-12)
    # var ~ 9 >> eps: the std shrinks only by sqrt(var / (var + eps)) ~ 1 - 6e-7.
    np.testing.assert_allclose(out.std(axis=0), np.abs(gamma), rtol=1e-5)


def test_test_mode_is_the_affine_map_of_the_running_statistics():
    x, gamma, beta, _ = make_inputs(5, 9, 4)
    rm, rv = np.array([0.5, -1.0, 2.0, 0.0]), np.array([4.0, 0.25, 1.0, 2.0])
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "test", "running_mean": rm, "running_var": rv, "eps": 1e-3})
    scale = gamma / np.sqrt(rv + 1e-3)
    np.testing.assert_allclose(out, x * scale + (beta - rm * scale), rtol=1e-12)


def test_test_mode_treats_each_sample_independently():
    x, gamma, beta, _ = make_inputs(6, 20, 3)
    p = {"mode": "test", "running_mean": np.ones(3), "running_var": np.full(3, 2.0)}
    full, _ = batchnorm_forward(x, gamma, beta, dict(p))
    alone, _ = batchnorm_forward(x[7:8], gamma, beta, dict(p))
    np.testing.assert_array_equal(full[7:8], alone)


def test_course_running_statistics_after_two_batches():
    rng = np.random.default_rng(7)
    b1, b2 = rng.standard_normal((5, 3)), 3 + rng.standard_normal((5, 3))
    p = {"mode": "train"}
    for b in (b1, b2):
        batchnorm_forward(b, np.ones(3), np.zeros(3), p)
    # Written out by hand: momentum 0.9 is the weight on the old value, start at 0 and 1.
    mean = 0.9 * (0.9 * 0 + 0.1 * b1.mean(0)) + 0.1 * b2.mean(0)
    var = 0.9 * (0.9 * 1 + 0.1 * b1.var(0)) + 0.1 * b2.var(0)
    np.testing.assert_allclose(p["running_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(p["running_var"], var, rtol=1e-12)
    assert p["num_batches_tracked"] == 2


def test_float32_stays_float32():
    x, gamma, beta, dout = make_inputs(8, 64, 16, dtype=np.float32)
    p = {"mode": "train"}
    out, cache = batchnorm_forward(x, gamma.astype(np.float64), beta.astype(np.float64), p)
    assert out.dtype == np.float32
    assert p["running_mean"].dtype == p["running_var"].dtype == np.float32
    for backward in BACKWARDS:
        assert all(g.dtype == np.float32 for g in backward(dout, cache))
    # float64 running statistics must not upcast float32 data in test mode either.
    p64 = {"mode": "test", "running_mean": np.zeros(16), "running_var": np.ones(16)}
    assert batchnorm_forward(x, gamma, beta, p64)[0].dtype == np.float32


@pytest.mark.parametrize(("stats_dtype", "x_dtype"), [(np.float32, np.float64), (np.float64, np.float32)])
def test_running_statistics_keep_their_own_dtype(stats_dtype, x_dtype):
    """As PyTorch's buffers do: a training batch of another dtype updates the values, not the dtype."""
    x, gamma, beta, _ = make_inputs(3, 32, 4, dtype=x_dtype)
    p = {"mode": "train", "running_mean": np.zeros(4, stats_dtype), "running_var": np.ones(4, stats_dtype)}
    out, _ = batchnorm_forward(x, gamma, beta, p)
    assert out.dtype == x_dtype
    assert p["running_mean"].dtype == p["running_var"].dtype == stats_dtype
    np.testing.assert_allclose(p["running_mean"], 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(p["running_var"], 0.9 + 0.1 * x.var(0), rtol=1e-5)


def test_float32_forward_is_accurate():
    x, gamma, beta, _ = make_inputs(9, 500, 8, loc=50.0)
    out64, _ = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    out32, _ = batchnorm_forward(
        x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32), {"mode": "train"}
    )
    assert np.abs(out32 - out64).max() < 1e-4


def test_forward_does_not_modify_its_inputs():
    x, gamma, beta, dout = make_inputs(10, 7, 3)
    saved = [a.copy() for a in (x, gamma, beta, dout)]
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    for backward in BACKWARDS:
        backward(dout, cache)
    for a, b in zip((x, gamma, beta, dout), saved, strict=True):
        np.testing.assert_array_equal(a, b)


GOOD = dict(x=np.ones((4, 3)) * np.arange(4)[:, None], gamma=np.ones(3), beta=np.zeros(3))


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"x": np.ones(3)}, ValueError, r"x must have 2 dimensions, got shape \(3,\)"),
        ({"x": np.ones((4, 3), dtype=np.int64)}, TypeError, r"x must have a floating dtype.*int64"),
        ({"x": np.array([[1.0, 2.0]], dtype=object)}, TypeError, r"x must have a floating dtype"),
        ({"x": [[1.0, 2.0, 3.0]] * 4}, TypeError, r"x must be a numpy array"),
        ({"gamma": np.ones(4)}, ValueError, r"gamma must have shape \(3,\)"),
        ({"beta": np.ones((1, 3))}, ValueError, r"beta must have shape \(3,\)"),
        ({"bn_param": {}}, ValueError, r"bn_param\['mode'\] is required"),
        ({"bn_param": {"mode": "eval"}}, ValueError, r"mode must be 'train' or 'test', got 'eval'"),
        (
            {"bn_param": {"mode": "train", "convention": "caffe"}},
            ValueError,
            r"convention.*'pytorch'.*got 'caffe'",
        ),
        ({"bn_param": {"mode": "train", "eps": 0.0}}, ValueError, r"bn_param\['eps'\] must be a positive"),
        ({"bn_param": {"mode": "train", "eps": -1e-5}}, ValueError, r"bn_param\['eps'\] must be a positive"),
        (
            {"bn_param": {"mode": "train", "momentum": 1.5}},
            ValueError,
            r"bn_param\['momentum'\] must be in \[0, 1\], got 1.5",
        ),
        (
            {"bn_param": {"mode": "train", "momentum": -0.1}},
            ValueError,
            r"bn_param\['momentum'\] must be in \[0, 1\]",
        ),
        (
            {"bn_param": {"mode": "train", "momentum": None}},
            ValueError,
            r"None.*only with convention 'pytorch'",
        ),
        ({"bn_param": {"mode": "train", "momentun": 0.9}}, ValueError, r"unknown keys \['momentun'\]"),
        (
            {"bn_param": {"mode": "train", "running_mean": np.zeros(5), "running_var": np.ones(3)}},
            ValueError,
            r"running_mean'\] must have shape \(3,\)",
        ),
        (
            {"bn_param": {"mode": "train", "running_mean": np.zeros(3)}},
            ValueError,
            r"both 'running_mean' and 'running_var', or neither",
        ),
        ({"bn_param": "train"}, TypeError, r"bn_param must be a dict"),
        ({"x": np.ones((1, 3))}, ValueError, r"expected more than 1 value per feature when training"),
        ({"x": np.array([[1.0, np.nan, 0.0], [2.0, 1.0, 0.0]])}, ValueError, r"x contains NaN or infinite"),
        ({"x": np.array([[1.0, np.inf, 0.0], [2.0, 1.0, 0.0]])}, ValueError, r"x contains NaN or infinite"),
        (
            {"x": np.array([[1.0, 3e38, 0.0], [2.0, -3e38, 0.0]], dtype=np.float32)},
            ValueError,
            r"too large to square in float32",
        ),
    ],
)
def test_bad_input_raises_a_clear_error_and_changes_nothing(change, error, message):
    previous = {
        "mode": "train",
        "running_mean": np.array([1.0, 2.0, 3.0]),
        "running_var": np.array([4.0, 5.0, 6.0]),
        "num_batches_tracked": 3,
    }
    args = dict(GOOD, bn_param=previous)
    args.update(change)
    before = copy.deepcopy(args["bn_param"])
    with pytest.raises(error, match=message):
        batchnorm_forward(args["x"], args["gamma"], args["beta"], args["bn_param"])
    after = args["bn_param"]
    if isinstance(after, dict):
        assert after.keys() == before.keys()
        for key in before:
            np.testing.assert_array_equal(after[key], before[key])


def test_test_mode_rejects_non_finite_input():
    with pytest.raises(ValueError, match="x contains NaN"):
        batchnorm_forward(np.array([[np.nan, 1.0]]), np.ones(2), np.zeros(2), {"mode": "test"})


def test_test_mode_accepts_a_single_sample():
    out, _ = batchnorm_forward(np.array([[3.0, -1.0]]), np.ones(2), np.zeros(2), {"mode": "test"})
    np.testing.assert_allclose(out, [[3.0, -1.0]] / np.sqrt(1 + 1e-5))


def test_backward_rejects_mismatched_dout_and_foreign_cache():
    x, gamma, beta, dout = make_inputs(11, 5, 3)
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    for backward in BACKWARDS:
        with pytest.raises(ValueError, match=r"dout must have the shape of the forward output \(5, 3\)"):
            backward(dout[:4], cache)
        with pytest.raises(TypeError, match="cache must be the cache returned by batchnorm_forward"):
            backward(dout, (x, gamma))


@pytest.mark.parametrize("with_bias", [True, False])
def test_fold_equals_affine_then_test_mode_bn(with_bias):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((20, 6))
    W, b = rng.standard_normal((6, 4)), (rng.standard_normal(4) if with_bias else None)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.standard_normal(4)
    rm, rv = rng.standard_normal(4), rng.uniform(0.1, 3, 4)
    saved = [a.copy() for a in (W, gamma, beta, rm, rv)]
    y = x @ W + (0 if b is None else b)
    expected, _ = batchnorm_forward(y, gamma, beta, {"mode": "test", "running_mean": rm, "running_var": rv})
    Wf, bf = batchnorm_fold(W, b, gamma, beta, rm, rv, eps=1e-5)
    np.testing.assert_allclose(x @ Wf + bf, expected, rtol=1e-12, atol=1e-12)
    for a, s in zip((W, gamma, beta, rm, rv), saved, strict=True):
        np.testing.assert_array_equal(a, s)


def test_fold_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"running_var must have shape \(4,\)"):
        batchnorm_fold(np.ones((3, 4)), None, np.ones(4), np.zeros(4), np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match="eps must be a positive"):
        batchnorm_fold(np.ones((3, 4)), None, np.ones(4), np.zeros(4), np.zeros(4), np.ones(4), eps=0)


NAN_3, INF_3 = np.array([1.0, np.nan, 1.0]), np.array([0.0, 0.0, -np.inf])


@pytest.mark.parametrize("mode", ["train", "test"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gamma": NAN_3}, r"^gamma contains NaN"),
        ({"beta": INF_3}, r"^beta contains NaN or infinite"),
        ({"running_mean": NAN_3}, r"bn_param\['running_mean'\] contains NaN"),
        ({"running_var": NAN_3}, r"bn_param\['running_var'\] contains NaN"),
        ({"running_var": INF_3}, r"bn_param\['running_var'\] contains NaN or infinite"),
    ],
)
def test_non_finite_parameters_and_statistics_are_named_and_change_nothing(mode, change, message):
    bn_param = {
        "mode": mode,
        "running_mean": np.array([1.0, 2.0, 3.0]),
        "running_var": np.array([4.0, 5.0, 6.0]),
    }
    args = dict(GOOD)
    for key, value in change.items():
        (bn_param if key.startswith("running") else args)[key] = value
    before = copy.deepcopy(bn_param)
    with pytest.raises(ValueError, match=message):
        batchnorm_forward(args["x"], args["gamma"], args["beta"], bn_param)
    for key in before:
        np.testing.assert_array_equal(bn_param[key], before[key])


def test_negative_running_variance_is_refused_where_it_is_used():
    bn_param = {"mode": "test", "running_mean": np.zeros(3), "running_var": np.array([1.0, -0.5, 1.0])}
    with pytest.raises(ValueError, match=r"bn_param\['running_var'\] must be non-negative.*-0.5"):
        batchnorm_forward(GOOD["x"], GOOD["gamma"], GOOD["beta"], bn_param)


def test_huge_but_finite_values_are_not_mistaken_for_non_finite():
    """The fast check multiplies vectors; an overflow of those products alone must not raise."""
    x = np.array([[1e18, 1.0], [3e18, 2.0]], dtype=np.float32)
    gamma = np.array([1e30, 1.0], dtype=np.float32)
    bn_param = {
        "mode": "train",
        "running_mean": np.zeros(2, np.float32),
        "running_var": np.full(2, 1e30, np.float32),
    }
    out, _ = batchnorm_forward(x, gamma, np.zeros(2, np.float32), bn_param)
    assert np.isfinite(bn_param["running_mean"]).all()
    assert np.isfinite(bn_param["running_var"]).all()
    np.testing.assert_allclose(out[:, 1], [-1, 1], rtol=1e-4)


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("W", np.full((3, 4), np.nan), "W contains NaN"),
        ("gamma", np.array([1.0, np.nan, 1.0, 1.0]), "gamma contains NaN"),
        ("beta", np.array([0.0, np.inf, 0.0, 0.0]), "beta contains NaN"),
        ("running_mean", np.array([0.0, np.nan, 0.0, 0.0]), "running_mean contains NaN"),
        ("running_var", np.array([1.0, -1.0, 1.0, 1.0]), "running_var must be non-negative"),
        ("running_var", np.array([1.0, np.nan, 1.0, 1.0]), "running_var contains NaN"),
    ],
)
def test_fold_refuses_non_finite_or_negative_values(argument, value, message):
    args = dict(
        W=np.ones((3, 4)),
        b=None,
        gamma=np.ones(4),
        beta=np.zeros(4),
        running_mean=np.zeros(4),
        running_var=np.ones(4),
    )
    args[argument] = value
    with pytest.raises(ValueError, match=message):
        batchnorm_fold(**args)


def test_large_inputs_are_refused_only_when_a_variance_overflows():
    """1e18 in float32: all squares together overflow, each feature's do not, so BN works; 1e19 is refused."""
    gamma, beta = np.ones(100, np.float32), np.zeros(100, np.float32)
    x = np.full((60, 100), 1e18, np.float32)
    x[::2] *= -1
    out, _ = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(np.abs(out), 1, rtol=1e-5)
    with pytest.raises(ValueError, match="too large to square in float32"):
        batchnorm_forward(x * 10, gamma, beta, {"mode": "train"})
