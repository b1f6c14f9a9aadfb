"""Execute notebooks under perturbed configurations and tabulate pass/fail and run time.

    python tools/claims.py                          # every configuration, every notebook
    python tools/claims.py --configs seed+1 notebooks/03_*.ipynb
    python tools/claims.py --configs seed+0,seed+4,seed+7 notebooks/06_*.ipynb   # any offset
    python tools/claims.py --seeds 0-9 notebooks/01_*.ipynb   # a sweep of offsets (make claims SEEDS=0-9)

A notebook passes a configuration when it runs top to bottom without an error,
so every ``assert`` in it holds; outputs are not compared (that is nbval's job
at the reference configuration). The configurations change what a claim must
not depend on: the seeds (BNHELPERS_SEED_OFFSET), the OpenBLAS kernel, the
number of BLAS threads, and the oldest package versions requirements.txt
allows (the virtual environment .venv-oldest, built by ``make oldest``).

Besides offsets 1-3, the default run tries a *rotating* offset that no one
chose: derived from the current commit (or, outside a git checkout, from
the date), so it changes with every commit. It is printed, with where it came
from, so that a failure can be reproduced with ``--configs seed+N``. A claim
that fails there is wider than its evidence.
Runs go two at a time, one per core. Logs of failures go to build/claims/.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TWO_THREADS = {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}

# name -> (environment changes, virtual environment)
CONFIGS = {
    "seed+1": ({**ONE_THREAD, "BNHELPERS_SEED_OFFSET": "1"}, ".venv"),
    "seed+2": ({**ONE_THREAD, "BNHELPERS_SEED_OFFSET": "2"}, ".venv"),
    "seed+3": ({**ONE_THREAD, "BNHELPERS_SEED_OFFSET": "3"}, ".venv"),
    "Haswell": ({**ONE_THREAD, "OPENBLAS_CORETYPE": "Haswell"}, ".venv"),
    "Prescott": ({**ONE_THREAD, "OPENBLAS_CORETYPE": "Prescott"}, ".venv"),
    "2 threads": (TWO_THREADS, ".venv"),
    "oldest": (ONE_THREAD, ".venv-oldest"),
}
ROTATING_RANGE = (4, 1000)  # offsets 1-3 are tried anyway; 0 is the reference run


def rotating_offset() -> tuple[int, str]:
    """(offset, source): an offset in ROTATING_RANGE from the commit's hash, or from today's date without git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        key, source = commit, f"commit {commit[:10]}"
    except (OSError, subprocess.CalledProcessError):
        today = datetime.date.today().isoformat()
        key, source = today, f"date {today}"
    low, high = ROTATING_RANGE
    offset = low + int(hashlib.sha256(key.encode()).hexdigest(), 16) % (high - low)
    return offset, source


def parse_seeds(text: str) -> list[str]:
    """'0-9' or '0,4,7' or '2-4,11' -> ['seed+0', ...]; a clear error otherwise."""
    offsets = []
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        if not (low.isdigit() and (not dash or high.isdigit())) or (dash and int(high) < int(low)):
            raise ValueError(f"seeds must look like 0-9 or 0,4,7 (offsets >= 0, ranges low-high); got {text!r}")
        offsets.extend(range(int(low), int(high if dash else low) + 1))
    return [f"seed+{n}" for n in dict.fromkeys(offsets)]


def default_configs() -> list[str]:
    """The fixed configurations, with the rotating seed offset after seed+3."""
    names = list(CONFIGS)
    names.insert(names.index("seed+3") + 1, f"seed+{rotating_offset()[0]}")
    return names


def config_named(name: str):
    """(environment changes, virtual environment) of a configuration; 'seed+N' works for any N >= 0."""
    if name in CONFIGS:
        return CONFIGS[name]
    offset = name.removeprefix("seed+")
    if name.startswith("seed+") and offset.isdigit():
        return {**ONE_THREAD, "BNHELPERS_SEED_OFFSET": str(int(offset))}, ".venv"
    raise KeyError(name)


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def execute(notebook: Path, config: str) -> tuple[bool, float, str]:
    """Run one notebook in a fresh kernel under one configuration: (passed, seconds, log)."""
    changes, venv = config_named(config)
    env = {**os.environ, "BNHELPERS_PROGRESS": "0", **changes}
    for name in ("BNHELPERS_SEED_OFFSET", "OPENBLAS_CORETYPE"):
        if name not in changes:
            env.pop(name, None)
    jupyter = ROOT / venv / "bin" / "jupyter"
    with tempfile.TemporaryDirectory() as out:
        command = [
            str(jupyter),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--output-dir",
            out,
            "--ExecutePreprocessor.timeout=900",
            "--ExecutePreprocessor.kernel_name=python3",
            str(notebook),
        ]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
    return done.returncode == 0, seconds, done.stdout + done.stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb and solutions/*.ipynb")
    parser.add_argument(
        "--configs",
        help=f"comma-separated, from {', '.join(CONFIGS)}, or seed+N for any N "
        "(default: all of those and a rotating seed offset derived from the commit)",
    )
    parser.add_argument("--seeds", help="a sweep of seed offsets instead of --configs: 0-9, or 0,4,7")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at once (default 2, one per core)")
    parser.add_argument("--table", type=Path, help="also write the markdown table to this file")
    args = parser.parse_args(argv)

    if args.seeds and args.configs:
        parser.error("give --seeds or --configs, not both")
    if args.seeds:
        try:
            configs = parse_seeds(args.seeds)
        except ValueError as error:
            parser.error(str(error))
    elif args.configs:
        configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    else:
        configs = default_configs()
        offset, source = rotating_offset()
        print(f"rotating seed offset: seed+{offset} (from the {source}); reproduce with --configs seed+{offset}")
    unknown = []
    for config in configs:
        try:
            config_named(config)
        except KeyError:
            unknown.append(config)
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)} or seed+N for any N")
    for config in configs:
        jupyter = ROOT / config_named(config)[1] / "bin" / "jupyter"
        if not jupyter.exists():
            parser.error(
                f"configuration {config!r} needs {jupyter.parent.parent.name}/ "
                f"(make {'oldest' if config == 'oldest' else 'setup'})"
            )
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted(
        (ROOT / "solutions").glob("*.ipynb")
    )
    jobs = [(nb, config) for config in configs for nb in notebooks]

    logs = ROOT / "build" / "claims"
    logs.mkdir(parents=True, exist_ok=True)
    results = {}
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for (nb, config), (passed, seconds, log) in zip(jobs, pool.map(lambda job: execute(*job), jobs), strict=True):
            results[nb.name, config] = (passed, seconds)
            print(f"{'pass' if passed else 'FAIL'} {seconds:6.0f} s  {config:9s} {nb.name}", flush=True)
            if not passed:
                log_file = logs / f"{nb.stem}.{config.replace(' ', '_')}.log"
                log_file.write_text(strip_ansi(log))
                print(
                    "\n".join(strip_ansi(log).strip().splitlines()[-25:]),
                    f"\n(full log: {log_file.relative_to(ROOT)})",
                    flush=True,
                )

    header = "| notebook | " + " | ".join(configs) + " |"
    lines = [header, "|---" * (len(configs) + 1) + "|"]
    for nb in notebooks:
        cells = [f"{'pass' if results[nb.name, c][0] else '**FAIL**'} {results[nb.name, c][1]:.0f} s" for c in configs]
        lines.append(f"| {nb.stem} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    failed = sum(not passed for passed, _ in results.values())
    if not args.configs and not args.seeds:
        offset, source = rotating_offset()
        table += f"\n\nseed+{offset}: the rotating seed offset, from the {source}"
    print(f"\n{table}\n\n{time.perf_counter() - started:.0f} s for {len(results)} notebook runs")
    print(f"{len(results) - failed} passed, {failed} failed")
    if args.table:
        args.table.write_text(table + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
