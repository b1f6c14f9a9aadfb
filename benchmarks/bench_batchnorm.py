"""Batch normalization speed: staged vs closed-form backward, and bnhelpers vs PyTorch CPU.

    python benchmarks/bench_batchnorm.py [--repeats 15]

float32, (N, D) = (60, 100), (256, 1024), (4096, 1024). Prints two Markdown
tables (pasted into the README's performance section). PyTorch columns need
`pip install -r requirements-bench.txt`; without it they are skipped.
bnhelpers runs with the BLAS threads the environment sets; PyTorch is
measured at 1 thread and at its default.
"""

from __future__ import annotations

import argparse

import numpy as np
from report import machine_line, markdown_table, try_import_torch

from bnhelpers import batchnorm_backward, batchnorm_backward_fast, batchnorm_forward
from bnhelpers.timing import median_seconds

SIZES = [(60, 100), (256, 1024), (4096, 1024)]


def inputs(N, D, seed=0):
    rng = np.random.default_rng(seed)
    x = (1.5 + 2.0 * rng.standard_normal((N, D))).astype(np.float32)
    gamma = rng.uniform(0.5, 2.0, D).astype(np.float32)
    beta = rng.standard_normal(D).astype(np.float32)
    dout = rng.standard_normal((N, D)).astype(np.float32)
    return x, gamma, beta, dout


def ours_forward_backward(x, gamma, beta, dout):
    bn_param = {"mode": "train"}

    def step():
        _, cache = batchnorm_forward(x, gamma, beta, bn_param)
        batchnorm_backward_fast(dout, cache)

    return step


def torch_forward_backward(torch, x, gamma, beta, dout):
    tx = torch.from_numpy(x).requires_grad_()
    tg, tb = torch.from_numpy(gamma).requires_grad_(), torch.from_numpy(beta).requires_grad_()
    td = torch.from_numpy(dout)
    rm, rv = torch.zeros(x.shape[1]), torch.ones(x.shape[1])

    def step():
        y = torch.nn.functional.batch_norm(tx, rm, rv, tg, tb, training=True, momentum=0.1, eps=1e-5)
        torch.autograd.grad(y, (tx, tg, tb), td)

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch = try_import_torch()
    print(f"machine: {machine_line()}" + (f", torch {torch.__version__}" if torch else ", torch not installed"))

    rows = []
    for N, D in SIZES:
        x, gamma, beta, dout = inputs(N, D)
        _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
        t = median_seconds(
            {
                "staged": lambda dout=dout, cache=cache: batchnorm_backward(dout, cache),
                "fast": lambda dout=dout, cache=cache: batchnorm_backward_fast(dout, cache),
            },
            repeats=args.repeats,
        )
        rows.append(
            [
                f"({N}, {D})",
                f"{t['staged'] * 1e3:.3f}",
                f"{t['fast'] * 1e3:.3f}",
                f"{t['staged'] / t['fast']:.2f}x",
            ]
        )
    print("\nBackward pass, float32, median ms per call (target: fast at least 2x faster at (4096, 1024))\n")
    print(markdown_table(["(N, D)", "staged graph", "closed form", "speed-up"], rows))

    if torch is None:
        print("\nPyTorch comparison skipped: torch is not installed (pip install -r requirements-bench.txt).")
        return
    default_threads = torch.get_num_threads()
    rows = []
    for N, D in SIZES:
        x, gamma, beta, dout = inputs(N, D)
        row = [f"({N}, {D})"]
        for threads in (1, default_threads):
            torch.set_num_threads(threads)
            t = median_seconds(
                {
                    "ours": ours_forward_backward(x, gamma, beta, dout),
                    "torch": torch_forward_backward(torch, x, gamma, beta, dout),
                },
                repeats=args.repeats,
            )
            row += [f"{t['ours'] * 1e3:.3f}", f"{t['torch'] * 1e3:.3f}", f"{t['ours'] / t['torch']:.2f}"]
        rows.append(row)
    torch.set_num_threads(default_threads)
    print("\nForward + backward, float32, median ms per call; ratio = bnhelpers / PyTorch (target <= 1.0)\n")
    print(
        markdown_table(
            [
                "(N, D)",
                "bnhelpers",
                "torch 1 thread",
                "ratio",
                "bnhelpers",
                f"torch {default_threads} threads",
                "ratio",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
