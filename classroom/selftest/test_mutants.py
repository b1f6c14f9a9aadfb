"""The mutation run (``make grader-check``): every catalogued mistake loses points, every alternative gets full marks.

Runs each mutant through the real grading path (jailed worker, hidden
checks) for its own part only. About a second of CPU per mutant.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from classroom import grade
from classroom.mutants import ALTERNATIVES, MISTAKES, apply_alternative, apply_mistake
from classroom.parts import PARTS, STUDENT_FILES
from classroom.release import ROOT, release_files


@pytest.fixture(scope="module")
def release():
    return release_files()


def master_submission(name):
    submission = grade.Submission(name)
    submission.files = {path: (ROOT / path).read_bytes() for path in STUDENT_FILES}
    return submission


def points(submission, part, release):
    results = grade.run_part(PARTS[part - 1], submission, release, time_limit=20)
    return round(sum(r.points for r in results), 6), [f"{r.name}: {r.message}" for r in results if not r.passed]


def mistaken(mistake):
    submission = master_submission(mistake.name)
    source = submission.files[mistake.path].decode()
    submission.files[mistake.path] = apply_mistake(source, mistake).encode()
    return submission


def test_the_catalogue_is_large_and_covers_every_part():
    assert len(MISTAKES) >= 40
    assert len(ALTERNATIVES) >= 5
    assert {m.part for m in MISTAKES} == {1, 2, 3}
    assert {a.part for a in ALTERNATIVES} == {1, 2, 3}
    assert len({m.name for m in MISTAKES}) == len(MISTAKES)


def test_every_mistake_loses_points(release):
    def score(mistake):
        return mistake, points(mistaken(mistake), mistake.part, release)

    with ThreadPoolExecutor(2) as pool:
        scored = list(pool.map(score, MISTAKES))
    survivors = [(m.part, m.name, got) for m, (got, _) in scored if got >= PARTS[m.part - 1].points - 1e-9]
    killed = len(MISTAKES) - len(survivors)
    print(f"mutation score: {killed} of {len(MISTAKES)} mistakes lose points")
    for m, (got, failures) in scored:
        print(f"  part {m.part} {got:5.1f}/{PARTS[m.part - 1].points}  {m.name}  [{'; '.join(failures)[:160]}]")
    assert not survivors, survivors


@pytest.mark.parametrize("alternative", ALTERNATIVES, ids=[a.name[:40] for a in ALTERNATIVES])
def test_every_correct_alternative_gets_full_marks(alternative, release):
    submission = master_submission(alternative.name)
    for path, functions in alternative.functions.items():
        submission.files[path] = apply_alternative(submission.files[path].decode(), functions).encode()
    got, failures = points(submission, alternative.part, release)
    assert got == PARTS[alternative.part - 1].points, failures
