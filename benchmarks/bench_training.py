"""Training-step speed and memory: bnhelpers vs PyTorch CPU on the course's networks.

    python benchmarks/bench_training.py [--threads N] [--repeats 15] [--against REV]

A step is forward + softmax cross-entropy + backward + optimizer update on a
fixed batch of real MNIST digits. Each bnhelpers network is timed alternately
with the same architecture in PyTorch (torch.nn, same initial weights is not
needed for timing), in one process; medians and ratios are printed as Markdown
tables for the README. Peak memory is the peak resident set size of a fresh
process that imports the framework, builds the network and runs 20 steps.
Run it on an otherwise idle machine: with BLAS threads competing for cores
with another process, both libraries slow down by orders of magnitude.
PyTorch columns need `pip install -r requirements-bench.txt`. --against REV
also times the bnhelpers of git revision REV in the same alternation, for
before/after figures measured side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

if __name__ == "__main__":  # thread settings must be in place before numpy/torch load BLAS
    _pre = argparse.ArgumentParser(add_help=False)
    _pre.add_argument("--threads", type=int)
    _known, _ = _pre.parse_known_args()
    if _known.threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(_known.threads)


from report import import_revision, machine_line, markdown_table, try_import_torch

import bnhelpers as bh
from bnhelpers.analysis.timing import median_seconds

CONFIGS = {
    "deep-plain": dict(title="deep net 784-9x100-10, tanh, SGD", batch=60),
    "deep-bn": dict(title="deep net + BN, tanh, SGD", batch=60),
    "three-layer": dict(title="784-256-256-10 + BN + dropout, Adam", batch=256),
    "cnn-plain": dict(title="small CNN (8, 16 channels), SGD", batch=64),
    "cnn-bn": dict(title="small CNN + spatial BN, SGD", batch=64),
}


def mnist_batch(config):
    images = config.startswith("cnn")
    data = bh.load_mnist(flatten=not images, channel_axis=images, verbose=False)
    n = CONFIGS[config]["batch"]
    return data.x_train[:n], data.y_train[:n]


def ours(config, lib=bh):
    """A bnhelpers training step for ``config`` (``lib``: this bnhelpers or an older revision of it)."""
    if config.startswith("deep"):
        net = lib.deep_net(0.1, norm="batch" if config == "deep-bn" else None)
        opt = lib.SGD(net.parameters(), lr=0.01)
    elif config == "three-layer":
        net = lib.three_layer_net(norm="batch", dropout=0.5)
        opt = lib.Adam(net.parameters(), lr=1e-2)
    else:
        net = lib.small_cnn(norm="batch" if config == "cnn-bn" else None)
        opt = lib.SGD(net.parameters(), lr=0.01)
    return lib.training_step(net, opt, *mnist_batch(config))


def theirs(torch, config):
    """The same architecture and step in PyTorch."""
    nn = torch.nn
    if config.startswith("deep"):
        bn = config == "deep-bn"
        layers, width = [], 784
        for _ in range(9):
            layers += [nn.Linear(width, 100, bias=not bn)] + ([nn.BatchNorm1d(100)] if bn else []) + [nn.Tanh()]
            width = 100
        model = nn.Sequential(*layers, nn.Linear(100, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
    elif config == "three-layer":
        model = nn.Sequential(
            nn.Linear(784, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(256, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(256, 10),
        )  # fmt: skip
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    else:
        bn = config == "cnn-bn"
        layers, c_in = [], 1
        for c_out in (8, 16):
            layers += (
                [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not bn)]
                + ([nn.BatchNorm2d(c_out)] if bn else [])
                + [nn.ReLU(), nn.MaxPool2d(2)]
            )
            c_in = c_out
        model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = (torch.from_numpy(a) for a in mnist_batch(config))
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def peak_rss_mb():
    """This process's peak resident set size.

    /proc/self/status's VmHWM belongs to the current program image; getrusage's
    ru_maxrss would also count the parent's peak, which Linux carries across exec.
    """
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(framework, config, steps=20):
    """Run in a fresh process: build, train ``steps`` steps, report peak RSS in MB."""
    torch = try_import_torch() if framework == "torch" else None
    step = theirs(torch, config) if torch else ours(config)
    for _ in range(steps):
        step()
    print(json.dumps({"peak_mb": peak_rss_mb()}))


def peak_memory(framework, config, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", framework, config] + (
        ["--threads", str(threads)] if threads else []
    )
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=os.path.dirname(__file__))
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def clock(args):
    return time.process_time if args.cpu_time else time.perf_counter


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, help="BLAS and PyTorch threads (default: each library's default)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--against", metavar="REV", help="also time the bnhelpers of this git revision")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with this process's CPU time (time.process_time), not the wall clock: on a machine shared "
        "with other busy processes, with one thread per library",
    )
    parser.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    torch = try_import_torch()
    if torch and args.threads:
        torch.set_num_threads(args.threads)
    threads = f"{args.threads} thread(s)" if args.threads else "library default threads"
    print(
        f"machine: {machine_line()}, {threads}"
        + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", torch not installed")
    )

    times = {}
    with tempfile.TemporaryDirectory() as folder:
        old = import_revision(args.against, folder) if args.against else None
        for config in CONFIGS:
            fns = {"ours": ours(config)}
            if old:
                fns["old"] = ours(config, lib=old)
            if torch:
                fns["torch"] = theirs(torch, config)
            times[config] = median_seconds(fns, repeats=args.repeats, clock=clock(args))

    rows = []
    for config, spec in CONFIGS.items():
        t = times[config]
        row = [spec["title"], spec["batch"]]
        if old:
            row += [f"{t['old'] * 1e3:.3f}"] + ([f"{t['old'] / t['torch']:.2f}"] if torch else [])
        row += [f"{t['ours'] * 1e3:.3f}"]
        row += [f"{t['torch'] * 1e3:.3f}", f"{t['ours'] / t['torch']:.2f}"] if torch else ["-", "-"]
        rows.append(row)
    print(
        "\nTraining step (forward, loss, backward, update), median ms, timed alternately; "
        "ratio = bnhelpers / PyTorch (target <= 0.8 for the deep net, <= 1.0 for the CNN)\n"
    )
    header = ["network", "batch"]
    if old:
        header += [f"{args.against}"] + ([f"{args.against} ratio"] if torch else [])
    print(markdown_table([*header, "bnhelpers", "PyTorch CPU", "ratio"], rows))

    def overhead(fw, plain, bn):
        return f"{times[bn][fw] / times[plain][fw] - 1:+.0%}"

    rows = [
        ["deep net (batch 60)", overhead("ours", "deep-plain", "deep-bn")]
        + ([overhead("torch", "deep-plain", "deep-bn")] if torch else ["-"])
    ]
    rows.append(
        ["small CNN (batch 64)", overhead("ours", "cnn-plain", "cnn-bn")]
        + ([overhead("torch", "cnn-plain", "cnn-bn")] if torch else ["-"])
    )
    print(
        "\nBN overhead: BN step time / plain step time - 1 (target <= +20%; the source measured +30% for a whole run)\n"
    )
    print(markdown_table(["network", "bnhelpers", "PyTorch CPU"], rows))

    rows = []
    for config, spec in CONFIGS.items():
        rows.append(
            [spec["title"], f"{peak_memory('ours', config, args.threads):.0f}"]
            + ([f"{peak_memory('torch', config, args.threads):.0f}"] if torch else ["-"])
        )
    print("\nPeak memory (max RSS of a fresh process: imports, network, 20 steps), MB\n")
    print(markdown_table(["network", "bnhelpers", "PyTorch CPU"], rows))


if __name__ == "__main__":
    main()
