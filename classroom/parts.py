"""The graded parts of the classroom edition: what a student writes, where, and for how many points.

Every function listed here has one ``### BEGIN SOLUTION`` / ``### END SOLUTION``
region in the master; the release replaces the region with a stub, and the
tests in ``classroom/public`` and ``classroom/hidden`` grade it. Part 4 is the
questions: answer cells in the notebooks, ``qN = ...`` inside a solution region.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Part:
    number: int
    title: str
    notebook: str
    points: int
    functions: dict = field(default_factory=dict)  # file -> function names (Class.method for methods)
    # Graded functions of other parts that this part's functions call: the grader gives
    # them the master's solution; every other part's function stays a stub.
    needs: dict = field(default_factory=dict)


PARTS = (
    Part(
        1,
        "BN forward (train and test mode) and the two backward passes",
        "02_batchnorm_backward",
        35,
        {"bnhelpers/batchnorm.py": ("batchnorm_forward", "batchnorm_backward", "batchnorm_backward_fast")},
        {"bnhelpers/conventions.py": ("Convention.weight_on_new", "Convention.update")},
    ),
    Part(
        2,
        "Running statistics in every framework's convention, and folding BN into the layer before it",
        "04_inference_and_pitfalls",
        15,
        {
            "bnhelpers/conventions.py": ("Convention.weight_on_new", "Convention.update"),
            "bnhelpers/batchnorm.py": ("batchnorm_fold",),
        },
    ),
    Part(
        3,
        "Spatial BN by the reshape trick, LayerNorm and GroupNorm",
        "05_batchnorm_in_cnns",
        30,
        {
            "bnhelpers/spatial.py": ("to_rows", "from_rows", "spatial_batchnorm_forward", "spatial_batchnorm_backward"),
            "bnhelpers/layernorm.py": (
                "layernorm_forward",
                "layernorm_backward",
                "groupnorm_forward",
                "groupnorm_backward",
            ),
        },
        {
            "bnhelpers/batchnorm.py": ("batchnorm_forward", "batchnorm_backward", "batchnorm_backward_fast"),
            "bnhelpers/conventions.py": ("Convention.weight_on_new", "Convention.update"),
        },
    ),
    Part(4, "Questions across the notebooks", "01-07", 20),
)


@dataclass(frozen=True)
class Question:
    """An answer cell's variable, where it is, and how it is marked.

    kind: 'number' (within ``tolerance``), 'choice' (one letter), 'set' (a set
    of names, order free) or 'written' (read by a grader with ``rubric``).
    """

    name: str
    notebook: str
    points: int
    kind: str
    tolerance: float = 0.0
    rubric: str = ""


QUESTIONS = (
    Question("q1", "01_activation_statistics", 2, "number", tolerance=0.02),
    Question("q2", "02_batchnorm_backward", 2, "choice"),
    Question("q3", "02_batchnorm_backward", 2, "number", tolerance=1e-9),
    Question("q4", "03_training_with_and_without_bn", 2, "choice"),
    Question(
        "q5",
        "03_training_with_and_without_bn",
        2,
        "written",
        rubric="1 point: both networks see the same initial weights and the same minibatches "
        "(or: the comparison changes one thing only). "
        "1 point: names a consequence, e.g. a difference is then due to BN and not to a lucky draw, "
        "or one seed is not enough and seeds must be repeated to compare with the spread.",
    ),
    Question("q6", "04_inference_and_pitfalls", 2, "number", tolerance=0.01),
    Question("q7", "04_inference_and_pitfalls", 2, "set"),
    Question("q8", "05_batchnorm_in_cnns", 2, "number", tolerance=0.5),
    Question(
        "q9",
        "06_why_batchnorm_helps",
        2,
        "written",
        rubric="1 point: the noisy-BN network's layer inputs move about as much as the plain network's "
        "(more after the first 200 iterations, ten times more than BN's), yet it trains at learning rate 0.8, "
        "where the plain network fails. "
        "1 point: so BN's tolerance of large learning rates does not come from reducing internal covariate shift "
        "(full marks may also note that the noise costs speed at 0.1).",
    ),
    Question("q10", "07_small_batches_and_alternatives", 2, "choice"),
)

# The files a student edits: these, and only these, are taken from a submission.
STUDENT_FILES = tuple(sorted({path for part in PARTS for path in part.functions})) + tuple(
    sorted({f"notebooks/{q.notebook}.ipynb" for q in QUESTIONS})
)

TOTAL_POINTS = sum(part.points for part in PARTS)
assert sum(q.points for q in QUESTIONS) == PARTS[3].points, "Part 4's points are its questions' points"
