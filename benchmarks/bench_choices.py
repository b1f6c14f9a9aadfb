"""The measurements behind speed choices that comments in bnhelpers mention, side by side in one process.

    python benchmarks/bench_choices.py [--repeats 15]

Each row times the way bnhelpers does something against the obvious
alternative, alternately, one BLAS thread, and prints the medians and the
ratio alternative / ours. A comment that says "faster" points here rather
than carrying a number, which would go stale on another machine.

* spatial rows: BN forward and backward on (N*H*W, C) rows made from NCHW
  maps channels first and transposed (spatial.to_rows) against rows copied
  into C-wide rows (x.transpose(0, 2, 3, 1).reshape(-1, C)).
* zero padding: written into np.zeros (conv2d_forward) against np.pad.
* max-pool winners: comparing each window position with the cached maxima
  (maxpool2d_backward) against np.argmax over the flattened windows.
* real-number check: a float told by its exact type first (_checks._is_real)
  against isinstance(value, numbers.Real) alone.
"""

from __future__ import annotations

import argparse
import numbers
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads BLAS

import numpy as np  # noqa: E402
from bnhelpers.timing import median_seconds  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402
from report import machine_line, markdown_table  # noqa: E402

import bnhelpers as bh  # noqa: E402
from bnhelpers._checks import _is_real  # noqa: E402
from bnhelpers.spatial import to_rows  # noqa: E402


def bn_on_rows(make_rows, x, dout):
    C = x.shape[1]
    gamma, beta = np.ones(C, x.dtype), np.zeros(C, x.dtype)
    dout_rows = make_rows(dout)

    def step():
        _, cache = bh.batchnorm_forward(make_rows(x), gamma, beta, {"mode": "train"})
        bh.batchnorm_backward_fast(dout_rows, cache)

    return step


def spatial_rows(rng):
    """The cnn's first BN: 64 maps of 8 channels, 28 x 28, float32."""
    x = rng.standard_normal((64, 8, 28, 28)).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    ours = bn_on_rows(lambda a: to_rows(a, "NCHW"), x, dout)
    alternative = bn_on_rows(lambda a: a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1]), x, dout)
    return "spatial rows: channels first, transposed vs C-wide rows (64x8x28x28)", ours, alternative


def zero_padding(rng):
    x = rng.standard_normal((64, 8, 14, 14)).astype(np.float32)

    def ours():
        xp = np.zeros((64, 8, 16, 16), dtype=x.dtype)
        xp[:, :, 1:15, 1:15] = x
        return xp

    def alternative():
        return np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))

    assert np.array_equal(ours(), alternative())
    return "zero padding: np.zeros and a slice vs np.pad (64x8x14x14, pad 1)", ours, alternative


def pool_winners(rng):
    x = rng.standard_normal((64, 8, 28, 28)).astype(np.float32)
    out, cache = bh.maxpool2d_forward(x, 2, 2)
    dout = rng.standard_normal(out.shape).astype(np.float32)

    def ours():
        return bh.maxpool2d_backward(dout, cache)

    def alternative():
        windows = sliding_window_view(x, (2, 2), axis=(2, 3))[:, :, ::2, ::2]
        winner = windows.reshape(*windows.shape[:4], 4).argmax(axis=-1)
        dx = np.zeros_like(x)
        n, c, i, j = np.indices(winner.shape, sparse=True)
        dx[n, c, 2 * i + winner // 2, 2 * j + winner % 2] = dout
        return dx

    np.testing.assert_array_equal(ours(), alternative())
    return "max-pool winners: cached maxima vs np.argmax (64x8x28x28, 2x2)", ours, alternative


def real_check(rng):
    value = float(rng.uniform(0.1, 1))

    def ours():
        return _is_real(value)

    def alternative():
        return not isinstance(value, bool) and isinstance(value, numbers.Real)

    return "real-number check: exact type first vs isinstance(numbers.Real) (a float)", ours, alternative


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for case in (spatial_rows, zero_padding, pool_winners, real_check):
        name, ours, alternative = case(rng)
        t = median_seconds({"ours": ours, "alternative": alternative}, repeats=args.repeats)
        rows.append(
            [name, f"{t['ours'] * 1e6:,.2f}", f"{t['alternative'] * 1e6:,.2f}", f"{t['alternative'] / t['ours']:.1f}"]
        )
    print(machine_line())
    print(markdown_table(["choice", "ours (µs)", "alternative (µs)", "alternative / ours"], rows))


if __name__ == "__main__":
    main()
