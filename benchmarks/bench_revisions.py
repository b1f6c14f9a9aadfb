"""Training-step speed of this checkout's bnhelpers against an older revision, side by side in one process.

    python benchmarks/bench_revisions.py REV [--repeats 15]

The older ``bnhelpers`` is extracted with ``git archive`` into a temporary
folder under another package name (its imports are relative, so it runs
unchanged) and both are timed alternately on the same MNIST batch, one BLAS
thread, so that machine noise hits both alike. Prints medians and the ratio
new / old; a refactoring should keep the ratio near 1.
"""

from __future__ import annotations

import argparse
import os
import tempfile

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads BLAS

from report import import_revision, machine_line, markdown_table  # noqa: E402

import bnhelpers as bh  # noqa: E402
from bnhelpers.analysis.timing import median_seconds  # noqa: E402

CONFIGS = {
    "deep-bn": ("deep net + BN, tanh, SGD, batch 60", 60),
    "three-layer": ("784-256-256-10 + BN + dropout, Adam, batch 256", 256),
    "cnn-bn": ("small CNN + spatial BN, SGD, batch 64", 64),
}


def training_step(lib, config, data):
    """A training step of ``config`` built with the package ``lib`` (old or new bnhelpers)."""
    n = CONFIGS[config][1]
    if config == "deep-bn":
        net, x = lib.deep_net(0.1, norm="batch"), data.x_train[:n]
        opt = lib.SGD(net.parameters(), lr=0.01)
    elif config == "three-layer":
        net, x = lib.three_layer_net(norm="batch", dropout=0.5), data.x_train[:n]
        opt = lib.Adam(net.parameters(), lr=1e-2)
    else:
        net, x = lib.small_cnn(norm="batch"), data.x_train[:n].reshape(n, 1, 28, 28)
        opt = lib.SGD(net.parameters(), lr=0.01)
    return lib.training_step(net, opt, x, data.y_train[:n])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rev", help="the older git revision, e.g. HEAD~3 or a commit hash")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    data = bh.load_mnist(verbose=False)
    print(f"machine: {machine_line()}, 1 BLAS thread")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        old = import_revision(args.rev, folder)
        for config, (title, _) in CONFIGS.items():
            t = median_seconds(
                {"old": training_step(old, config, data), "new": training_step(bh, config, data)},
                repeats=args.repeats,
            )
            rows.append([title, f"{t['old'] * 1e3:.3f}", f"{t['new'] * 1e3:.3f}", f"{t['new'] / t['old']:.2f}"])
    print(f"\nTraining step, median ms: {args.rev} (old) vs this checkout (new)\n")
    print(markdown_table(["network", "old ms", "new ms", "new / old"], rows))


if __name__ == "__main__":
    main()
