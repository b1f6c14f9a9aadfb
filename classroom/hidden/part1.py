"""Hidden checks, Part 1: batchnorm_forward, batchnorm_backward, batchnorm_backward_fast.

Instructor material: never in the student release. Each check is one property
(its docstring-like text is the line a student sees when it fails). Expected
values are computed here from the formulas (forward) or with the master's
own functions (gradients), in float64, and compared with tolerances from
float error bounds (checking.bound).
"""

import numpy as np

import bnhelpers as master
from classroom.checking import Failed, bound, check, close, result

SHAPES = [(2, 1), (2, 7), (3, 4), (17, 5), (64, 33)]
DTYPES = {np.float32: "float32", np.float64: "float64"}


def batch(N, D, seed, dtype=np.float64, shift=3.0):
    rng = np.random.default_rng(seed)
    x = (rng.uniform(0.5, 4) * rng.standard_normal((N, D)) + rng.uniform(-shift, shift)).astype(dtype)
    gamma, beta = rng.standard_normal(D).astype(dtype), rng.standard_normal(D).astype(dtype)
    return x, gamma, beta, rng.standard_normal((N, D)).astype(dtype)


def forward_tolerance(x, gamma, beta, eps, dtype):
    """Error bound of gamma * (x - mean) / sqrt(var + eps) + beta computed in ``dtype``."""
    x64 = x.astype(np.float64)
    var = x64.var(axis=0)
    condition = 1 + x64.mean(axis=0) ** 2 / (var + eps)
    scale = np.abs(gamma) * (1 + 2 * np.abs(x64).max(axis=0) / np.sqrt(var + eps)) + np.abs(beta)
    return bound(dtype, len(x), condition.max()) * scale


def expected_forward(x, gamma, beta, eps):
    x, gamma, beta = (a.astype(np.float64) for a in (x, gamma, beta))
    return gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) + beta


def train(student, x, gamma, beta, eps=None, **extra):
    bn_param = {"mode": "train", **({} if eps is None else {"eps": eps}), **extra}
    out, cache = result(student.batchnorm_forward(x, gamma, beta, bn_param), 2, "batchnorm_forward")
    return out, cache, bn_param


@check(
    4, "Training-mode output equals gamma * (x - mean) / sqrt(var + eps) + beta, for shapes from (2, 1) to (64, 33)."
)
def forward_matches_the_formula(student):
    for shape in SHAPES:
        x, gamma, beta, _ = batch(*shape, seed=sum(shape))
        out, _, _ = train(student, x, gamma, beta)
        tolerance = forward_tolerance(x, gamma, beta, 1e-5, np.float64)
        close(out, expected_forward(x, gamma, beta, 1e-5), tolerance, f"the output for x of shape {shape}", np.float64)


@check(
    1,
    "Each feature of the training-mode output has mean beta and standard deviation |gamma| (public test).",
    public=True,
)
def forward_output_statistics(student):
    x, gamma, beta, _ = batch(8, 5, seed=0)
    out, _, _ = train(student, x, gamma, beta, eps=1e-12)
    close(np.asarray(out).mean(axis=0), beta, 1e-9, "the mean of each output feature")
    close(
        np.asarray(out).std(axis=0),
        np.abs(gamma),
        1e-6 * np.abs(gamma),
        "the standard deviation of each output feature",
    )


@check(2, "float32 input gives float32 output, as accurate as float32 arithmetic allows.")
def forward_keeps_float32(student):
    x, gamma, beta, _ = batch(16, 6, seed=3, dtype=np.float32)
    out, _, _ = train(student, x, gamma, beta)
    close(
        out,
        expected_forward(x, gamma, beta, 1e-5),
        forward_tolerance(x, gamma, beta, 1e-5, np.float32),
        "the output",
        np.float32,
    )


@check(1, "The eps in bn_param is added to the variance inside the square root (checked with eps = 2).")
def forward_uses_eps_inside_the_square_root(student):
    x, gamma, beta, _ = batch(10, 4, seed=4)
    out, _, _ = train(student, x, gamma, beta, eps=2.0)
    close(
        out,
        expected_forward(x, gamma, beta, 2.0),
        forward_tolerance(x, gamma, beta, 2.0, np.float64),
        "the output with eps = 2",
    )


@check(
    1, "The cache holds x_hat, the batch mean, the biased batch variance (before eps), std = sqrt(var + eps) and gamma."
)
def cache_holds_the_batch_statistics(student):
    x, gamma, beta, _ = batch(9, 3, seed=5)
    _, cache, _ = train(student, x, gamma, beta, eps=0.1)
    if not isinstance(cache, dict) or not {"x_hat", "mean", "var", "std", "gamma"} <= cache.keys():
        raise Failed("the cache must be the BatchNormCache that batchnorm_forward returns")
    tolerance = bound(np.float64, 9, 3)
    mean, var = x.mean(axis=0), x.var(axis=0)
    close(cache["mean"], mean, tolerance * np.abs(x).max(axis=0), "cache.mean")
    close(cache["var"], var, tolerance * (var + mean**2), "cache.var")
    close(cache["std"], np.sqrt(var + 0.1), tolerance * np.sqrt(var + 0.1 + mean**2), "cache.std")
    close(
        cache["x_hat"],
        (x - mean) / np.sqrt(var + 0.1),
        forward_tolerance(x, np.ones(3), np.zeros(3), 0.1, np.float64),
        "cache.x_hat",
    )
    close(cache["gamma"], gamma, 0, "cache.gamma")


def update_tolerance(n, *values):
    return bound(np.float64, n, 40) * sum(np.abs(v) for v in values)


@check(
    2,
    "Over five training batches the running statistics follow running <- m * running + (1 - m) * batch (course convention).",
)
def running_statistics_over_several_steps(student):
    bn_param, mean, var = {"mode": "train", "momentum": 0.8}, np.zeros(4), np.ones(4)
    for step in range(5):
        x, gamma, beta, _ = batch(12, 4, seed=10 + step)
        result(student.batchnorm_forward(x, gamma, beta, bn_param), 2, "batchnorm_forward")
        mean, var = 0.8 * mean + 0.2 * x.mean(axis=0), 0.8 * var + 0.2 * x.var(axis=0)
    for key, value in (("running_mean", mean), ("running_var", var)):
        if key not in bn_param:
            raise Failed(f"bn_param['{key}'] is missing after training batches")
        close(bn_param[key], value, 5 * update_tolerance(12, value, 10), f"bn_param['{key}'] after five batches")
    if bn_param.get("num_batches_tracked") != 5:
        raise Failed(
            f"bn_param['num_batches_tracked'] is {bn_param.get('num_batches_tracked')!r} after five batches, expected 5"
        )


@check(
    1,
    "With bn_param['convention'] set, a training step updates the running statistics by that convention's rule (Convention.update).",
)
def running_statistics_follow_the_convention(student):
    for name, c in sorted(master.CONVENTIONS.items()):
        x, gamma, beta, _ = batch(6, 3, seed=20)
        _, _, bn_param = train(student, x, gamma, beta, convention=name)
        a = c.momentum if c.momentum_is_new else 1 - c.momentum
        stored = x.var(axis=0) * (6 / 5 if c.unbiased else 1)
        close(
            bn_param.get("running_mean"),
            a * x.mean(axis=0),
            update_tolerance(6, x.mean(axis=0), 1),
            f"running_mean ({name})",
        )
        close(
            bn_param.get("running_var"),
            (1 - a) * c.running_var_init + a * stored,
            update_tolerance(6, stored, 1),
            f"running_var ({name})",
        )


@check(
    1,
    "With PyTorch's momentum=None the running mean after k batches is the mean of the k batch means (this batch counts).",
)
def cumulative_average_counts_this_batch(student):
    bn_param, means = {"mode": "train", "convention": "pytorch", "momentum": None}, []
    for step in range(4):
        x, gamma, beta, _ = batch(8, 3, seed=40 + step)
        result(student.batchnorm_forward(x, gamma, beta, bn_param), 2, "batchnorm_forward")
        means.append(x.mean(axis=0))
    close(
        bn_param.get("running_mean"), np.mean(means, axis=0), update_tolerance(8, 10), "running_mean after four batches"
    )


@check(
    2,
    "In test mode BN normalizes with the running statistics, not the batch's, and changes nothing in bn_param (in every convention).",
)
def test_mode_uses_and_keeps_the_running_statistics(student):
    x, gamma, beta, _ = batch(5, 3, seed=6)
    mean, var = np.array([1.0, -2.0, 0.5]), np.array([4.0, 0.25, 1.0])
    for convention in ("course", "pytorch", "tf1"):
        bn_param = {
            "mode": "test",
            "running_mean": mean.copy(),
            "running_var": var.copy(),
            "eps": 1e-3,
            "convention": convention,
        }
        before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in bn_param.items()}
        out, _ = result(student.batchnorm_forward(x, gamma, beta, bn_param), 2, "batchnorm_forward")
        expected = gamma * (x - mean) / np.sqrt(var + 1e-3) + beta
        tolerance = bound(np.float64, 1, 1) * (
            np.abs(gamma) * (np.abs(x) + np.abs(mean)) / np.sqrt(var + 1e-3) + np.abs(beta)
        )
        close(out, expected, tolerance, f"the test-mode output ({convention} convention)")
        if bn_param.keys() != before.keys() or not all(
            np.array_equal(bn_param[k], before[k]) if isinstance(before[k], np.ndarray) else bn_param[k] == before[k]
            for k in before
        ):
            changed = sorted(
                k
                for k in bn_param.keys() | before.keys()
                if k not in before or k not in bn_param or not np.array_equal(bn_param[k], before[k])
            )
            raise Failed(
                f"test mode changed bn_param ({', '.join(changed)}) in the {convention} convention: only training batches may update the running statistics"
            )


def backward_reference(x, gamma, beta, dout, eps):
    """The master's cache and gradients, in float64."""
    x64, g64, b64 = (a.astype(np.float64) for a in (x, gamma, beta))
    _, cache = master.batchnorm_forward(x64, g64, b64, {"mode": "train", "eps": eps})
    grads = master.batchnorm_backward_fast(dout.astype(np.float64), cache)
    if x.dtype != np.float64:
        _, cache = master.batchnorm_forward(x, gamma, beta, {"mode": "train", "eps": eps})
    return cache, grads


def gradient_tolerances(cache, dout):
    """Error bounds of dx, dgamma, dbeta: float error relative to the magnitudes of the terms summed."""
    N = len(dout)
    dtype = cache.x.dtype
    d, x_hat = np.abs(dout.astype(np.float64)), np.abs(cache.x_hat.astype(np.float64))
    sum_d, sum_dx = d.sum(axis=0), (d * x_hat).sum(axis=0)
    dx_scale = np.abs(cache.gamma) / cache.std * (d + sum_d / N + x_hat * sum_dx / N + x_hat.max(axis=0) * sum_dx / N)
    condition = 1 + (cache.mean.astype(np.float64) ** 2 / cache.std.astype(np.float64) ** 2).max()
    b = bound(dtype, N, condition, factor=32)
    return b * dx_scale, b * sum_dx, b * sum_d


def check_backward(student, function, shape, seed, dtype=np.float64, eps=1e-5):
    x, gamma, beta, dout = batch(*shape, seed=seed, dtype=dtype)
    cache, expected = backward_reference(x, gamma, beta, dout, eps)
    got = result(getattr(student, function)(dout, cache), 3, function)
    dtype_name = DTYPES[dtype]
    for name, value, want, tolerance in zip(
        ("dx", "dgamma", "dbeta"), got, expected, gradient_tolerances(cache, dout), strict=True
    ):
        close(
            value,
            want,
            tolerance,
            f"{name} for {dtype_name} x of shape {shape}" + (f" with eps = {eps}" if eps != 1e-5 else ""),
            dtype,
        )


@check(
    4,
    "batchnorm_backward (node by node): dx, dgamma and dbeta are right for shapes from (2, 3) to (13, 6), batches of two included.",
)
def staged_backward_is_right(student):
    for shape in [(8, 5), (2, 3), (5, 1), (13, 6)]:
        check_backward(student, "batchnorm_backward", shape, seed=30 + shape[0])


@check(
    4,
    "batchnorm_backward_fast (closed form): dx, dgamma and dbeta are right for shapes from (2, 3) to (13, 6), batches of two included.",
)
def fast_backward_is_right(student):
    for shape in [(8, 5), (2, 3), (5, 1), (13, 6)]:
        check_backward(student, "batchnorm_backward_fast", shape, seed=30 + shape[0])


@check(
    2,
    "Both backward passes use the eps the forward pass used (std from the cache, not sqrt(var) or a fixed eps): checked with eps = 0.5.",
)
def backward_uses_the_forward_eps(student):
    for function in ("batchnorm_backward", "batchnorm_backward_fast"):
        check_backward(student, function, (6, 4), seed=50, eps=0.5)


@check(
    2,
    "Both backward passes keep the dtype of x: float32 input gives float32 dx, dgamma and dbeta, as accurate as float32 allows.",
)
def backward_keeps_float32(student):
    for function in ("batchnorm_backward", "batchnorm_backward_fast"):
        check_backward(student, function, (32, 8), seed=7, dtype=np.float32)


@check(1, "dx sums to zero over the batch (shifting a feature by a constant does not change BN's output).")
def dx_sums_to_zero(student):
    x, gamma, beta, dout = batch(20, 5, seed=8)
    cache, _ = backward_reference(x, gamma, beta, dout, 1e-12)
    tolerance = gradient_tolerances(cache, dout)[0].sum(axis=0)
    for function in ("batchnorm_backward", "batchnorm_backward_fast"):
        dx = result(getattr(student, function)(dout, cache), 3, function)[0]
        close(np.asarray(dx).sum(axis=0), np.zeros(5), tolerance, f"the sum of {function}'s dx over the batch")


@check(1, "Your functions do not modify their inputs (x, gamma, beta, dout or the cache).")
def inputs_are_not_modified(student):
    x, gamma, beta, dout = batch(7, 4, seed=9)
    student.modified.clear()
    _, cache = master.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    train(student, x, gamma, beta)
    student.batchnorm_forward(x, gamma, beta, {"mode": "test", "running_mean": np.zeros(4), "running_var": np.ones(4)})
    student.batchnorm_backward(dout, cache)
    student.batchnorm_backward_fast(dout, cache)
    if student.modified:
        function, name = student.modified[0]
        raise Failed(
            f"your function modified its input: {function} changed its argument {name} in place (compute new arrays instead)"
        )
