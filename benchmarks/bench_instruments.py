"""What the training-health instruments cost: train's on_step hook off, passed through, and a monitor on.

    python benchmarks/bench_instruments.py [--repeats 9] [--iterations 60]

Times whole ``train`` calls (forward, loss, backward, update, minibatch
indexing) on real MNIST digits for the deep net of notebook 03 (784-9x100-10,
tanh, batch 60, plain and with BN), with a 60-image validation set so that
evaluation hardly counts, and prints the median time per training step:

* off:          on_step=None, the default. The only code it adds to a step is
                one ``is None`` test, timed on its own and printed as a share
                of a step (the target is under 5%);
* pass-through: a hook that only calls step(), the price of the callback itself;
* monitor:      instruments.TrainingMonitor recording every 25 iterations and
                every iteration, probe batch of 200 images.

The variants are timed in alternation in one process (bnhelpers.analysis.timing), so
machine noise hits them alike. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import timeit

if __name__ == "__main__":  # one BLAS thread, as the notebooks run; before numpy loads BLAS
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")

from report import machine_line, markdown_table

import bnhelpers as bh
from bnhelpers.analysis.timing import median_seconds


def pass_through(iteration, net, step):
    step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--iterations", type=int, default=100, help="training steps per timed train() call")
    args = parser.parse_args()
    mnist = bh.load_mnist(verbose=False)
    data = dataclasses.replace(mnist, x_val=mnist.x_val[:60], y_val=mnist.y_val[:60])
    probe_x, probe_y = mnist.x_val[:200], mnist.y_val[:200]
    hooks = {
        "off (on_step=None)": lambda: None,
        "pass-through hook": lambda: pass_through,
        "monitor, every 25": lambda: bh.TrainingMonitor(probe_x, probe_y, every=25),
        "monitor, every step": lambda: bh.TrainingMonitor(probe_x, probe_y, every=1),
    }
    # The whole cost of the hook when off: `if on_step is None:` once per step.
    hook = None
    branch = min(timeit.repeat("hook is None", globals={"hook": hook}, number=1_000_000, repeat=5)) / 1_000_000

    print(machine_line(), f"| BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}")
    for norm in (None, "batch"):
        net = bh.deep_net(0.1, norm=norm, seed=0)
        optimizer = bh.SGD(net.parameters(), lr=0.01)

        def run(make_hook, net=net, optimizer=optimizer):
            bh.train(
                net,
                optimizer,
                data,
                iterations=args.iterations,
                batch_size=60,
                eval_every=args.iterations,
                progress=False,
                verbose=False,
                on_step=make_hook(),
            )

        seconds = median_seconds(
            {name: lambda make=make: run(make) for name, make in hooks.items()}, repeats=args.repeats, number=1
        )
        off = seconds["off (on_step=None)"] / args.iterations
        rows = [
            [name, f"{s / args.iterations * 1e3:.3f}", f"{s / seconds['off (on_step=None)'] - 1:+.1%}"]
            for name, s in seconds.items()
        ]
        print(
            f"\ndeep net 784-9x100-10, tanh, SGD, batch 60, {'with BN' if norm else 'plain'}: "
            f"median of {args.repeats} train() calls of {args.iterations} steps"
        )
        print(markdown_table(["on_step", "ms per step", "vs off"], rows))
        print(f"the hook when off: one `is None` test, {branch * 1e9:.0f} ns = {branch / off:.5%} of a step")


if __name__ == "__main__":
    main()
