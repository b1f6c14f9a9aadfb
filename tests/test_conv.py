"""Tests for bnhelpers.engine.conv: convolution and pooling, forward and backward.

The forward passes are compared with references written as the formulas read,
one loop per index; the backward passes with centred finite differences.
"""

import re

import numpy as np
import pytest
from helpers import assert_gradients_match
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bnhelpers.engine.conv import (
    conv2d_backward,
    conv2d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)

# ---------------------------------------------------------------- references


def padded(x, pad):
    N, C, H, W = x.shape
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
    xp[:, :, pad : pad + H, pad : pad + W] = x
    return xp


def conv_reference(x, w, b, stride, pad):
    """out[n, f, i, j] = b[f] + sum over (c, p, q) of w[f, c, p, q] * xp[n, c, i*stride + p, j*stride + q]."""
    xp = padded(x, pad)
    N, _C, Hp, Wp = xp.shape
    F, _, KH, KW = w.shape
    H_out, W_out = (Hp - KH) // stride + 1, (Wp - KW) // stride + 1
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    patch = xp[n, :, i * stride : i * stride + KH, j * stride : j * stride + KW]
                    out[n, f, i, j] = np.sum(patch * w[f]) + (0.0 if b is None else b[f])
    return out


def maxpool_reference(x, size, stride):
    N, C, H, W = x.shape
    H_out, W_out = (H - size) // stride + 1, (W - size) // stride + 1
    out = np.zeros((N, C, H_out, W_out))
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    out[n, c, i, j] = x[n, c, i * stride : i * stride + size, j * stride : j * stride + size].max()
    return out


def maxpool_backward_reference(x, dout, size, stride):
    """Each window's gradient to its np.argmax pixel (the first maximum in row-major order)."""
    dx = np.zeros_like(x)
    N, C, H_out, W_out = dout.shape
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * stride : i * stride + size, j * stride : j * stride + size]
                    p, q = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * stride + p, j * stride + q] += dout[n, c, i, j]
    return dx


def distinct_values(rng, shape):
    """Values 0.1 apart in random order: no ties, so finite differences of max pooling are valid."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1).astype(np.float64)


# x shape, w shape, stride, pad: square and non-square inputs and kernels,
# windows that do not tile the input, a kernel as large as the padded input.
CONV_CASES = [
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 0),
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 1),
    ((2, 3, 5, 7), (2, 3, 2, 3), 2, 1),
    ((1, 2, 8, 8), (2, 2, 3, 3), 2, 0),
    ((1, 2, 6, 5), (3, 2, 3, 1), 3, 2),
    ((2, 1, 4, 4), (2, 1, 4, 4), 1, 0),
    ((1, 1, 2, 3), (1, 1, 4, 5), 1, 1),
    ((3, 4, 7, 6), (5, 4, 1, 1), 2, 0),
]


# ---------------------------------------------------------------- convolution forward


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "pad"), CONV_CASES)
def test_conv_forward_matches_loops(x_shape, w_shape, stride, pad):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    out, _ = conv2d_forward(x, w, b, stride=stride, pad=pad)
    expected = conv_reference(x, w, b, stride, pad)
    assert out.shape == expected.shape
    assert out.flags.c_contiguous
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("input_grad", [True, False])
def test_conv_backward_returns_only_what_was_asked(bias, input_grad):
    """Without b, db is None and the rest equals a zero bias's; input_grad=False gives dx None, the same dw and db."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4) if bias else None
    out, cache = conv2d_forward(x, w, b, stride=2, pad=1)
    reference_out, reference_cache = conv2d_forward(x, w, np.zeros(4) if b is None else b, stride=2, pad=1)
    np.testing.assert_array_equal(out, reference_out)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward(dout, cache, input_grad=input_grad)
    dx_reference, dw_reference, db_reference = conv2d_backward(dout, reference_cache)
    assert (dx is None) == (not input_grad)
    assert (db is None) == (not bias)
    np.testing.assert_array_equal(dw, dw_reference)
    if input_grad:
        np.testing.assert_array_equal(dx, dx_reference)
    if bias:
        np.testing.assert_array_equal(db, db_reference)


def test_conv_does_not_modify_its_inputs():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    copies = [a.copy() for a in (x, w, b)]
    out, cache = conv2d_forward(x, w, b, stride=2, pad=1)
    dout = rng.standard_normal(out.shape)
    dout_copy = dout.copy()
    conv2d_backward(dout, cache)
    for a, c in zip((x, w, b, dout), (*copies, dout_copy), strict=True):
        np.testing.assert_array_equal(a, c)


def test_conv_accepts_non_contiguous_input():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 5, 3)).transpose(0, 3, 1, 2)  # NHWC data seen as NCHW
    w = rng.standard_normal((2, 3, 3, 3))
    out, _ = conv2d_forward(x, w, None, pad=1)
    np.testing.assert_allclose(out, conv_reference(x, w, None, 1, 1), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- convolution backward


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("pad", [0, 1])
def test_conv_gradients_match_finite_differences(stride, pad):
    rng = np.random.default_rng(10 * stride + pad)
    x, w, b = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)
    out, cache = conv2d_forward(x, w, b, stride=stride, pad=pad)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward(dout, cache)
    assert_gradients_match(
        lambda: conv2d_forward(x, w, b, stride=stride, pad=pad)[0],
        {"x": x, "w": w, "b": b},
        {"x": dx, "w": dw, "b": db},
        dout,
    )


@settings(max_examples=40, deadline=None)
@given(
    N=st.integers(1, 2),
    C=st.integers(1, 3),
    F=st.integers(1, 3),
    H=st.integers(1, 7),
    W=st.integers(1, 7),
    KH=st.integers(1, 4),
    KW=st.integers(1, 4),
    stride=st.integers(1, 3),
    pad=st.integers(0, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_conv_forward_and_adjoint_on_random_shapes(N, C, F, H, W, KH, KW, stride, pad, seed):
    """Forward equals the loops; backward is the adjoint of the forward pass.

    out is linear in x and in w, so for any dout
        sum(out * dout) = sum(x * dx) + sum(b * db) = sum(w * dw) + sum(b * db).
    """
    assume(KH <= H + 2 * pad and KW <= W + 2 * pad)
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((N, C, H, W)), rng.standard_normal((F, C, KH, KW)), rng.standard_normal(F)
    out, cache = conv2d_forward(x, w, b, stride=stride, pad=pad)
    np.testing.assert_allclose(out, conv_reference(x, w, b, stride, pad), rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward(dout, cache)
    assert dx.shape == x.shape
    assert dw.shape == w.shape
    assert db.shape == b.shape
    assert dx.flags.c_contiguous
    total = np.sum(out * dout)
    np.testing.assert_allclose(np.sum(x * dx) + np.sum(b * db), total, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.sum(w * dw) + np.sum(b * db), total, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- pooling

# x shape, size, stride: tiling windows, overlapping windows, windows that do
# not tile the input, non-square input, global pooling.
POOL_CASES = [
    ((2, 3, 4, 4), 2, None),
    ((2, 2, 7, 5), 2, None),
    ((1, 2, 7, 7), 3, 2),
    ((2, 1, 5, 6), 2, 1),
    ((2, 3, 6, 6), 6, None),
]


@pytest.mark.parametrize(("x_shape", "size", "stride"), POOL_CASES)
def test_maxpool_forward_and_backward_match_loops(x_shape, size, stride):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(x_shape)
    out, cache = maxpool2d_forward(x, size, stride)
    s = size if stride is None else stride
    np.testing.assert_array_equal(out, maxpool_reference(x, size, s))
    dout = rng.standard_normal(out.shape)
    dx = maxpool2d_backward(dout, cache)
    np.testing.assert_allclose(dx, maxpool_backward_reference(x, dout, size, s), atol=1e-15)


@pytest.mark.parametrize(("x_shape", "size", "stride"), POOL_CASES)
def test_maxpool_gradients_match_finite_differences(x_shape, size, stride):
    rng = np.random.default_rng(6)
    x = distinct_values(rng, x_shape)
    out, cache = maxpool2d_forward(x, size, stride)
    dout = rng.standard_normal(out.shape)
    dx = maxpool2d_backward(dout, cache)
    assert_gradients_match(lambda: maxpool2d_forward(x, size, stride)[0], {"x": x}, {"x": dx}, dout)


@pytest.mark.parametrize(("size", "stride"), [(2, None), (3, 1)])
def test_maxpool_ties_send_the_gradient_to_one_pixel_per_window(size, stride):
    """A constant input ties every pixel; the first of each window (its top-left) takes the gradient, once."""
    x = np.full((1, 2, 6, 6), 3.0)
    out, cache = maxpool2d_forward(x, size, stride)
    dout = np.ones_like(out)
    dx = maxpool2d_backward(dout, cache)
    s = size if stride is None else stride
    expected = np.zeros_like(x)
    expected[:, :, : s * out.shape[2] : s, : s * out.shape[3] : s] = 1.0
    np.testing.assert_array_equal(dx, expected)
    assert dx.sum() == dout.sum()


def test_maxpool_backward_is_unaffected_by_changes_to_the_returned_output():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 2, 4, 4))
    out, cache = maxpool2d_forward(x)
    dout = rng.standard_normal(out.shape)
    before = maxpool2d_backward(dout, cache)
    np.maximum(out, 0.0, out=out)  # an in-place ReLU on the pooled maps
    np.testing.assert_array_equal(maxpool2d_backward(dout, cache), before)


# ---------------------------------------------------------------- dtypes


def test_float32_stays_float32():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    out, cache = conv2d_forward(x, w, b, pad=1)
    assert out.dtype == np.float32
    grads = conv2d_backward(rng.standard_normal(out.shape).astype(np.float32), cache)
    assert all(g.dtype == np.float32 for g in grads)
    np.testing.assert_allclose(out, conv_reference(x, w, b, 1, 1), rtol=1e-4, atol=1e-4)
    pooled, pool_cache = maxpool2d_forward(x)
    assert pooled.dtype == np.float32
    assert maxpool2d_backward(np.ones_like(pooled), pool_cache).dtype == np.float32


def test_parameters_and_dout_follow_the_dtype_of_x():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)  # float64
    out, cache = conv2d_forward(x, w, b)
    assert out.dtype == np.float32
    dx, dw, db = conv2d_backward(rng.standard_normal(out.shape), cache)  # float64 dout
    assert dx.dtype == dw.dtype == db.dtype == np.float32


# ---------------------------------------------------------------- errors


def _conv(x=(2, 3, 5, 5), w=(4, 3, 3, 3), b=(4,), dtypes=(float, float, float), **kwargs):
    """A conv2d_forward call on zero/one arrays of the given shapes and dtypes (b=None: no bias)."""
    x, w = np.zeros(x, dtypes[0]), np.ones(w, dtypes[1])
    b = None if b is None else np.zeros(b, dtypes[2])
    return lambda: conv2d_forward(x, w, b, **kwargs)


def _pool(forward, shape=(1, 1, 4, 4), dtype=float, **kwargs):
    x = np.zeros(shape, dtype)
    return lambda: forward(x, **kwargs)


ERROR_CASES = [
    (
        "x list",
        lambda: conv2d_forward([[1.0]], np.ones((1, 1, 1, 1)), None),
        TypeError,
        "x must be a numpy array",
    ),
    ("x ints", _conv(dtypes=(int, float, float)), TypeError, "x must have a floating dtype"),
    ("x rank", _conv(x=(3, 5, 5)), ValueError, "x must have 4 dimensions"),
    ("w rank", _conv(w=(4, 3, 3)), ValueError, "w must have 4 dimensions"),
    ("w ints", _conv(dtypes=(float, int, float)), TypeError, "w must have a floating dtype"),
    ("channels", _conv(x=(2, 1, 5, 5)), ValueError, "w has C=3 input channels but x has C=1"),
    ("b shape", _conv(b=(3,)), ValueError, r"b must have shape \(4,\)"),
    ("b ints", _conv(dtypes=(float, float, int)), TypeError, "b must have a floating dtype"),
    ("stride 0", _conv(stride=0), ValueError, "stride must be a positive integer, got 0"),
    ("stride float", _conv(stride=1.0), TypeError, "stride must be a positive integer, got 1.0"),
    ("stride bool", _conv(stride=True), TypeError, "stride must be a positive integer"),
    ("pad negative", _conv(pad=-1), ValueError, "pad must be an integer >= 0, got -1"),
    ("pad float", _conv(pad=0.5), TypeError, "pad must be an integer >= 0"),
    (
        "kernel too tall",
        _conv(x=(2, 3, 2, 5)),
        ValueError,
        "w's 3x3 kernel is larger than the padded input 2x5",
    ),
    (
        "kernel too wide",
        _conv(x=(2, 3, 5, 1)),
        ValueError,
        "w's 3x3 kernel is larger than the padded input 5x1",
    ),
    ("pool rank", _pool(maxpool2d_forward, shape=(4, 4)), ValueError, "x must have 4 dimensions"),
    ("pool ints", _pool(maxpool2d_forward, dtype=int), TypeError, "x must have a floating dtype"),
    ("pool size 0", _pool(maxpool2d_forward, size=0), ValueError, "size must be a positive integer"),
    ("pool size float", _pool(maxpool2d_forward, size=2.0), TypeError, "size must be a positive integer"),
    ("pool stride 0", _pool(maxpool2d_forward, stride=0), ValueError, "stride must be a positive integer"),
    (
        "pool too large",
        _pool(maxpool2d_forward, shape=(1, 1, 4, 3), size=4),
        ValueError,
        "size=4 is larger than the input x",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_bad_arguments_raise_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("forward", "backward"),
    [
        (lambda x: conv2d_forward(x, np.ones((2, 3, 3, 3)), None), conv2d_backward),
        (maxpool2d_forward, maxpool2d_backward),
    ],
)
def test_backward_checks_dout_and_cache(forward, backward):
    out, cache = forward(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=re.escape(f"dout must have the shape of the forward output {out.shape}")):
        backward(np.zeros((2, 3, 1, 1)), cache)
    with pytest.raises(ValueError, match="dout must have 4 dimensions"):
        backward(np.zeros(out.shape[1:]), cache)
    with pytest.raises(TypeError, match="dout must have a floating dtype"):
        backward(np.zeros(out.shape, int), cache)
    with pytest.raises(TypeError, match="cache must be the cache returned by"):
        backward(np.zeros(out.shape), tuple(cache))
