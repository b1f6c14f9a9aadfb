"""Batch normalization speed: staged vs closed-form backward, and bnhelpers vs PyTorch CPU.

    python benchmarks/bench_batchnorm.py [--repeats 15] [--against REV]

float32, (N, D) = (60, 100), (256, 1024), (4096, 1024). Prints Markdown
tables (pasted into the README's performance section). PyTorch columns need
`pip install -r requirements-bench.txt`; without it they are skipped.
bnhelpers runs with the BLAS threads the environment sets; PyTorch is
measured at 1 thread and at its default. The peer (cs231n_peer.py, plain
numpy without checks) is timed alongside: bnhelpers should be at least as fast.
--against REV also times the bnhelpers of git revision REV in the same
alternation, for before/after figures measured side by side.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import cs231n_peer
import numpy as np
from report import import_revision, machine_line, markdown_table, try_import_torch

from bnhelpers import batchnorm_backward, batchnorm_backward_fast, batchnorm_forward
from bnhelpers.analysis.timing import median_seconds

SIZES = [(60, 100), (256, 1024), (4096, 1024)]


def inputs(N, D, seed=0):
    rng = np.random.default_rng(seed)
    x = (1.5 + 2.0 * rng.standard_normal((N, D))).astype(np.float32)
    gamma = rng.uniform(0.5, 2.0, D).astype(np.float32)
    beta = rng.standard_normal(D).astype(np.float32)
    dout = rng.standard_normal((N, D)).astype(np.float32)
    return x, gamma, beta, dout


def ours_forward_backward(x, gamma, beta, dout, lib=None):
    """A forward + closed-form backward step of bnhelpers (or of ``lib``, an older revision of it)."""
    forward = lib.batchnorm_forward if lib else batchnorm_forward
    backward = lib.batchnorm_backward_fast if lib else batchnorm_backward_fast
    bn_param = {"mode": "train"}

    def step():
        _, cache = forward(x, gamma, beta, bn_param)
        backward(dout, cache)

    return step


def peer_forward_backward(x, gamma, beta, dout):
    def step():
        _, cache = cs231n_peer.batchnorm_forward(x, gamma, beta)
        cs231n_peer.batchnorm_backward(dout, cache)

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


def clock(args):
    return time.process_time if args.cpu_time else time.perf_counter


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--against", metavar="REV", help="also time the bnhelpers of this git revision")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with this process's CPU time (time.process_time), not the wall clock: on a machine shared "
        "with other busy processes, with one thread per library",
    )
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
            clock=clock(args),
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

    with tempfile.TemporaryDirectory() as folder:
        old = import_revision(args.against, folder) if args.against else None
        compare(torch, old, args)


def compare(torch, old, args):
    """Forward + backward of bnhelpers, the peer, PyTorch (1 thread, default threads) and ``old``, alternated."""
    default_threads = torch.get_num_threads() if torch else 1
    threaded = default_threads > 1 and not args.cpu_time  # CPU time would add up the threads' times
    rows = []
    for N, D in SIZES:
        x, gamma, beta, dout = inputs(N, D)
        fns = {"ours": ours_forward_backward(x, gamma, beta, dout), "peer": peer_forward_backward(x, gamma, beta, dout)}
        if old:
            fns["old"] = ours_forward_backward(x, gamma, beta, dout, lib=old)
        if torch:
            fns["torch"] = torch_forward_backward(torch, x, gamma, beta, dout)
            torch.set_num_threads(1)
        t = median_seconds(fns, repeats=args.repeats, clock=clock(args))
        row = [f"({N}, {D})"]
        if old:
            row += [f"{t['old'] * 1e3:.3f}"] + ([f"{t['old'] / t['torch']:.2f}"] if torch else [])
        row += [f"{t['ours'] * 1e3:.3f}", f"{t['peer'] * 1e3:.3f}", f"{t['ours'] / t['peer']:.2f}"]
        if torch:
            row += [f"{t['torch'] * 1e3:.3f}", f"{t['ours'] / t['torch']:.2f}"]
            if threaded:
                torch.set_num_threads(default_threads)
                t = median_seconds({"ours": fns["ours"], "torch": fns["torch"]}, repeats=args.repeats)
                row += [f"{t['torch'] * 1e3:.3f}", f"{t['ours'] / t['torch']:.2f}"]
        rows.append(row)
    if torch:
        torch.set_num_threads(default_threads)
    header = ["(N, D)"]
    if old:
        header += [f"{args.against} ms"] + ([f"{args.against} / torch"] if torch else [])
    header += ["bnhelpers ms", "peer ms", "bnhelpers / peer"]
    if torch:
        header += ["torch 1 thread ms", "bnhelpers / torch"]
        if threaded:
            header += [f"torch {default_threads} threads ms", "bnhelpers / torch"]
    print(
        "\nForward + backward, float32, median ms per call, all columns but the last two timed alternately "
        "(target: bnhelpers / torch <= 1.0 and bnhelpers / peer <= 1.0)\n"
    )
    print(markdown_table(header, rows))
    if not torch:
        print("\nPyTorch comparison skipped: torch is not installed (pip install -r requirements-bench.txt).")


if __name__ == "__main__":
    main()
