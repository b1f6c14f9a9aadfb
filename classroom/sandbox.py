"""Running student code where it can compute but not cheat: the trusted side of the worker.

A ``Worker`` holds one submission's spliced ``bnhelpers`` in a process of its
own, jailed on Linux by classroom/jail.py (namespaces through util-linux's
``unshare``), with limits on CPU time, memory, processes and file size. The
grader's checks run here, in the trusted process, and send the worker only
inputs; the worker sends back outputs (classroom/wire.py: JSON and raw
arrays, never pickle), which the checks compare with expected values that
never leave this process.

Processes are started with ``subprocess.Popen`` and ``start_new_session``
only (no ``preexec_fn``, which is unsafe in the grader's threads); the
worker sets its own limits before it imports student code.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from . import wire

HERE = Path(__file__).resolve().parent
# Wall-clock seconds allowed per CPU second of the limit, for code that sleeps or blocks.
WALL_CLOCK_FACTOR = 5
MEMORY_MB = 1024  # address space per process; numpy with one BLAS thread needs about 150 MB
PROCESSES = 16
FILE_MB = 16
SCRATCH_MB = 32
# Each jailed worker gets a uid of its own (when the grader runs as root), so that its
# process limit counts its own processes only.
UIDS = itertools.count()
UID_BASE = 1_000_000 + (os.getpid() % 10_000) * 1_000


class StudentError(Exception):
    """The student's function raised: its exception type and message."""

    def __init__(self, function, kind, message):
        super().__init__(f"{function} raised {kind}: {message}")
        self.function, self.kind, self.message = function, kind, message


class WorkerStopped(Exception):
    """The worker ended or stopped answering: ``reason`` says how, in the student's terms."""

    def __init__(self, reason, timed_out=False):
        super().__init__(reason)
        self.reason, self.timed_out = reason, timed_out


class UnsafePlatform(RuntimeError):
    """This machine cannot isolate student code; grading needs the explicit unsafe flag."""


@functools.cache
def isolation_problem():
    """None when jailed workers work here, else why not (checked once by starting a real jail)."""
    if not sys.platform.startswith("linux"):
        return f"{sys.platform} has no Linux namespaces"
    if shutil.which("unshare") is None:
        return "util-linux's unshare is not installed"
    try:
        with Worker({"bnhelpers/__init__.py": ""}, time_limit=10) as worker:
            worker.start()
    except StudentError:
        return None  # the jailed worker ran, and reported that this empty bnhelpers lacks modules
    except (WorkerStopped, OSError) as error:
        return f"a jailed test process could not start ({error})"
    return None


def package_path():
    """Where numpy is installed (the worker's only third-party import), and the stdlib."""
    import numpy

    return str(Path(numpy.__file__).resolve().parent.parent)


def read_only_paths():
    """Host paths the jail mounts read-only: the system's libraries, the Python installation, numpy."""
    paths = ["/usr"]
    for name in ("/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin"):
        if os.path.isdir(name) and not os.path.islink(name):
            paths.append(name)
    paths.append(str(Path(sys.base_prefix).resolve()))
    paths.append(package_path())
    for key in ("stdlib", "platstdlib"):
        paths.append(str(Path(sysconfig.get_paths()[key]).resolve()))
    unique = []
    for path in sorted(set(paths), key=len):
        if not any(path == u or path.startswith(u.rstrip("/") + "/") for u in unique):
            unique.append(path)
    return unique


def user_processes():
    """How many processes this user has now (RLIMIT_NPROC counts them all)."""
    uid = str(os.geteuid())
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "status").read_text().split("Uid:")[1].split()[1] == uid:
                count += 1
        except (OSError, IndexError):
            continue
    return count


class Worker:
    """One jailed worker process; ``call`` runs a bnhelpers function in it.

    ``files``: {path relative to the sandbox: text} (the spliced bnhelpers).
    ``time_limit``: CPU seconds for the whole worker; the wall-clock deadline is
    WALL_CLOCK_FACTOR times that, from ``start``. ``isolate=False`` runs the
    worker as a plain limited process (no jail): only with the grader's unsafe flag.
    """

    def __init__(self, files, time_limit, isolate=True, named_tuples=None):
        self.files, self.time_limit, self.isolate = files, time_limit, isolate
        self.named_tuples = named_tuples or {}
        self.process, self.tmp, self.deadline = None, None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="grade-worker-"))
        sandbox = self.tmp / "sandbox"
        for path, text in self.files.items():
            (sandbox / path).parent.mkdir(parents=True, exist_ok=True)
            (sandbox / path).write_text(text)
        for name in ("worker.py", "wire.py"):
            shutil.copy(HERE / name, sandbox / name)
        for folder in [sandbox, *sandbox.rglob("*")]:
            folder.chmod(0o755 if folder.is_dir() else 0o644)
        self.tmp.chmod(0o755)
        limits = {"CPU": max(1, round(self.time_limit)), "AS": MEMORY_MB * 2**20, "FSIZE": FILE_MB * 2**20}
        limits |= {"NOFILE": 64, "CORE": 0}
        env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        python = str(Path(sys.executable).resolve())
        if self.isolate:
            root = self.tmp / "root"
            root.mkdir()
            uid = UID_BASE + next(UIDS) % 1_000 if os.geteuid() == 0 else None
            limits["NPROC"] = PROCESSES if uid is not None else user_processes() + PROCESSES
            env |= {"GRADER_PATH": package_path(), "GRADER_LIMITS": json.dumps(limits)}
            config = {
                "root": str(root),
                "read_only": read_only_paths(),
                "sandbox": str(sandbox),
                "python": python,
                "uid": uid,
                "scratch_mb": SCRATCH_MB,
                "env": env,
            }
            namespaces = ["--mount", "--pid", "--net", "--ipc", "--uts", "--fork", "--kill-child"]
            if uid is None:
                namespaces = ["--user", "--map-root-user", *namespaces]
            command = ["unshare", *namespaces, python, "-I", "-S", str(HERE / "jail.py"), json.dumps(config)]
            process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:
            limits["NPROC"] = user_processes() + PROCESSES
            env |= {"GRADER_PATH": package_path(), "GRADER_LIMITS": json.dumps(limits)}
            command = [python, "-I", "-S", str(sandbox / "worker.py")]
            process_env = dict(env, PATH=os.environ.get("PATH", "/usr/bin:/bin"), HOME=str(self.tmp))
        self.deadline = time.monotonic() + WALL_CLOCK_FACTOR * self.time_limit
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=process_env,
            cwd=self.tmp,
            start_new_session=True,
        )
        hello, _ = self.receive()
        if "import_error" in hello:
            problem = hello["import_error"]
            raise StudentError("importing bnhelpers", str(problem.get("error")), str(problem.get("message")))
        if hello != {"ready": True}:
            raise WorkerStopped("the worker did not start properly")
        return self

    def read_exact(self, n):
        data = bytearray()
        fd = self.process.stdout.fileno()
        while len(data) < n:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.stop()
                raise WorkerStopped(
                    f"did not finish within {WALL_CLOCK_FACTOR * self.time_limit:g} s of wall-clock time "
                    "(code that waits or blocks)",
                    timed_out=True,
                )
            chunk = os.read(fd, min(n - len(data), 1 << 20))
            if not chunk:
                raise self.died()
            data += chunk
        return bytes(data)

    def died(self):
        """The WorkerStopped for a worker whose output ended."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.stop()
            code = self.process.returncode
        if code in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
            return WorkerStopped(
                f"did not finish within {self.time_limit:g} s of CPU time (an infinite loop, or code far too slow)",
                timed_out=True,
            )
        return WorkerStopped(f"the process running your code ended (exit status {code}) before it answered")

    def receive(self):
        try:
            message = wire.read_message(self.read_exact)
            return wire.decode(message, self.named_tuples)
        except wire.WireError as error:
            self.stop()
            raise WorkerStopped(f"the process running your code sent an unreadable answer ({error})") from None

    def call(self, function, *args, **kwargs):
        """(value, args after the call, kwargs after, contiguity flags of the value's arrays)."""
        if self.process is None:
            self.start()
        if self.process.poll() is not None:
            raise self.died()
        try:
            data = wire.encode({"function": function, "args": list(args), "kwargs": kwargs})
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self.died() from None
        answer, flags = self.receive()
        if not isinstance(answer, dict):
            raise WorkerStopped("the process running your code sent an unreadable answer")
        if "error" in answer:
            raise StudentError(function, str(answer["error"])[:100], str(answer.get("message", ""))[:2000])
        if not {"value", "args", "kwargs"} <= answer.keys():
            raise WorkerStopped("the process running your code sent an unreadable answer")
        return answer["value"], answer["args"], answer["kwargs"], flags

    def stop(self):
        """Kill the worker and everything it started (its session; the jail's PID namespace ends with it)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def close(self):
        """End the worker: its input closed, it exits (and is waited for, so that its CPU time is
        counted); then its session is killed whatever happened, stray processes included."""
        if self.process is not None:
            for stream in (self.process.stdin, self.process.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=2)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
