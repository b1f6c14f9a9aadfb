"""Hidden checks, Part 2: Convention.weight_on_new, Convention.update, batchnorm_fold.

Instructor material: never in the student release. Expected values come from
the conventions' table (bnhelpers.conventions) and the formulas, computed
here; tolerances from float error bounds (checking.bound).
"""

import numpy as np

import bnhelpers as master
from classroom.checking import Failed, bound, check, close, result


def expected_a(c, momentum, k):
    if momentum is None:
        return 1 / k
    return momentum if c.momentum_is_new else 1 - momentum


def weight(student, preset, momentum, k):
    a = student.convention(preset, "weight_on_new", momentum, k)
    if isinstance(a, np.ndarray) and a.shape == ():
        a = float(a)
    if not isinstance(a, (int, float)) or isinstance(a, bool):
        raise Failed(f"weight_on_new must return a number, returned {type(a).__name__}")
    return a


@check(
    2,
    "weight_on_new uses the momentum it is given, in the convention's meaning (weight on the new value for PyTorch, on the old one elsewhere).",
)
def weight_on_new_uses_its_momentum(student):
    for preset, c in sorted(master.CONVENTIONS.items()):
        for momentum in (c.momentum, 0.3, 0.75):
            a = weight(student, preset, momentum, 3)
            want = expected_a(c, momentum, 3)
            if not abs(a - want) <= 4 * np.finfo(float).eps:
                raise Failed(f"{preset}: weight_on_new({momentum}, 3) returned {a!r}, expected {want!r}")


@check(1, "Momentum 0 is a number like any other, not the cumulative average (only None means that).")
def momentum_zero_is_not_none(student):
    for preset, c in (("course", master.CONVENTIONS["course"]), ("pytorch", master.CONVENTIONS["pytorch"])):
        a = weight(student, preset, 0.0, 4)
        if a != expected_a(c, 0.0, 4):
            raise Failed(
                f"{preset}: weight_on_new(0.0, 4) returned {a!r}, expected {expected_a(c, 0.0, 4)!r} (test `momentum is None`, not `not momentum`)"
            )


@check(
    1,
    "PyTorch's momentum=None: weight_on_new gives 1/k, so after k batches the running mean is the mean of the k batch means.",
)
def cumulative_average(student):
    for k in (1, 2, 4, 7):
        a = weight(student, "pytorch", None, k)
        if not abs(a - 1 / k) <= 4 * np.finfo(float).eps:
            raise Failed(f"weight_on_new(None, {k}) returned {a!r}, expected 1/{k}")
    rng, mean, var, means = np.random.default_rng(1), np.zeros(3), np.ones(3), []
    for k in range(1, 8):
        batch_mean = rng.standard_normal(3)
        means.append(batch_mean)
        mean, var = result(
            student.convention("pytorch", "update", mean, var, batch_mean, np.ones(3), 10, None, k), 2, "update"
        )
    close(
        mean,
        np.mean(means, axis=0),
        bound(np.float64, 8, 8) * 4,
        "the running mean after seven batches with momentum None",
    )


def independent_update(c, running_mean, running_var, batch_mean, batch_var, n, momentum, k):
    a = expected_a(c, momentum, k)
    stored = batch_var * n / (n - 1) if c.unbiased else batch_var
    return (1 - a) * running_mean + a * batch_mean, (1 - a) * running_var + a * stored


@check(
    3,
    "update follows each framework's convention (momentum meaning, unbiased n/(n-1) or biased variance) over six batches of varying size.",
)
def every_convention_over_several_batches(student):
    for preset, c in sorted(master.CONVENTIONS.items()):
        rng = np.random.default_rng(len(preset))
        mean, var = np.zeros(4), np.full(4, c.running_var_init)
        expected, scale = (mean, var), (np.zeros(4), np.full(4, c.running_var_init))
        for k in range(1, 7):
            batch_mean, batch_var, n = rng.standard_normal(4), rng.random(4) + 0.1, int(rng.integers(2, 50))
            mean, var = result(
                student.convention(preset, "update", mean, var, batch_mean, batch_var, n, c.momentum, k), 2, "update"
            )
            expected = independent_update(c, *expected, batch_mean, batch_var, n, c.momentum, k)
            # Each step's rounding, relative to the magnitudes combined (not to a result that may cancel to near zero).
            scale = (np.maximum(scale[0], np.abs(batch_mean)), np.maximum(scale[1], batch_var * 2))
        for what, got, want, s in (
            ("running_mean", mean, expected[0], scale[0]),
            ("running_var", var, expected[1], scale[1]),
        ):
            close(got, want, bound(np.float64, 6, 2) * s, f"{preset}: {what} after six batches")


@check(
    1,
    "update returns arrays in the running statistics' dtype (float32 stays float32) and leaves every input unchanged.",
)
def update_keeps_float32_and_inputs(student):
    student.modified.clear()
    running_mean, running_var = np.zeros(3, np.float32), np.ones(3, np.float32)
    batch_mean, batch_var = np.array([1.0, 2, 3]), np.array([2.0, 2, 2])
    new_mean, new_var = result(
        student.convention("keras", "update", running_mean, running_var, batch_mean, batch_var, 8, 0.99, 1), 2, "update"
    )
    close(new_mean, [0.01, 0.02, 0.03], bound(np.float32, 2, 2) * 3, "the new running mean (float32)", np.float32)
    close(new_var, [1.01, 1.01, 1.01], bound(np.float32, 2, 2) * 2, "the new running variance (float32)", np.float32)
    if student.modified:
        raise Failed(
            f"your function modified its input: update changed {student.modified[0][1]} in place (return new arrays instead)"
        )


@check(
    1,
    "The course update keeps momentum on the old value with the biased variance; PyTorch's weights the new value and stores n/(n-1) times it (public tests).",
    public=True,
)
def course_and_pytorch_updates(student):
    new_mean, new_var = result(
        student.convention(
            "course", "update", np.zeros(3), np.ones(3), np.array([1.0, 2.0, 3.0]), np.full(3, 4.0), 10, 0.9, 1
        ),
        2,
        "update",
    )
    close(new_mean, [0.1, 0.2, 0.3], 1e-15, "course: the running mean")
    close(new_var, [1.3, 1.3, 1.3], 1e-15, "course: the running variance")
    new_mean, new_var = result(
        student.convention(
            "pytorch", "update", np.zeros(2), np.ones(2), np.array([1.0, -1.0]), np.array([4.0, 8.0]), 5, 0.1, 1
        ),
        2,
        "update",
    )
    close(new_mean, [0.1, -0.1], 1e-15, "pytorch: the running mean")
    close(new_var, [0.9 + 0.1 * 5.0, 0.9 + 0.1 * 10.0], 1e-14, "pytorch: the running variance")


def fold_case(shape, with_bias, seed, eps):
    rng = np.random.default_rng(seed)
    D_in, D_out = shape
    x, W = rng.standard_normal((7, D_in)), rng.standard_normal((D_in, D_out))
    b = rng.standard_normal(D_out) if with_bias else None
    gamma, beta = rng.standard_normal(D_out), rng.standard_normal(D_out)
    mean, var = rng.standard_normal(D_out), rng.random(D_out) + 0.01
    y = x @ W + (b if with_bias else 0)
    expected = gamma * (y - mean) / np.sqrt(var + eps) + beta
    scale = np.abs(gamma) / np.sqrt(var + eps) * (
        np.abs(x) @ np.abs(W) + np.abs(b if with_bias else 0) + np.abs(mean)
    ) + np.abs(beta)
    return x, W, b, gamma, beta, mean, var, expected, bound(np.float64, D_in, 4) * scale


@check(3, "The folded layer reproduces Linear followed by test-mode BN, with and without a bias, for the eps given.")
def fold_equals_linear_then_bn(student):
    for shape in [(4, 3), (1, 1), (5, 3), (20, 11)]:
        for with_bias in (True, False):
            eps = 1e-3 if shape != (4, 3) else 0.4
            x, W, b, gamma, beta, mean, var, expected, tolerance = fold_case(shape, with_bias, sum(shape), eps)
            W_f, b_f = result(student.batchnorm_fold(W, b, gamma, beta, mean, var, eps=eps), 2, "batchnorm_fold")
            W_f, b_f = np.asarray(W_f), np.asarray(b_f)
            if W_f.shape != W.shape or b_f.shape != (shape[1],):
                raise Failed(
                    f"batchnorm_fold returned shapes {W_f.shape} and {b_f.shape}, expected {W.shape} and {(shape[1],)}"
                )
            what = f"x @ W_folded + b_folded for W of shape {shape}, {'with' if with_bias else 'without'} a bias, eps = {eps}"
            close(x @ W_f + b_f, expected, tolerance, what)


@check(1, "Folding float32 weights gives float32 weights and leaves W and b unchanged.")
def fold_keeps_float32_and_inputs(student):
    student.modified.clear()
    rng = np.random.default_rng(2)
    W, b = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    W_f, b_f = result(
        student.batchnorm_fold(W, b, np.ones(3), np.zeros(3), np.zeros(3), np.full(3, 4.0)), 2, "batchnorm_fold"
    )
    close(W_f, W / np.sqrt(4.0 + 1e-5), bound(np.float32, 1, 2) * np.abs(W), "W_folded", np.float32)
    close(b_f, b / np.sqrt(4.0 + 1e-5), bound(np.float32, 1, 2) * np.abs(b), "b_folded", np.float32)
    if student.modified:
        raise Failed(f"your function modified its input: batchnorm_fold changed {student.modified[0][1]} in place")
