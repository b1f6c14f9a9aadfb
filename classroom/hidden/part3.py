"""Hidden checks, Part 3: to_rows, from_rows, spatial BN, LayerNorm and GroupNorm.

Instructor material: never in the student release. Expected outputs from the
formulas, expected gradients from the master's functions on the master's
cache, in float64; tolerances from float error bounds (checking.bound).
"""

import numpy as np

import bnhelpers as master
from classroom.checking import Failed, bound, check, close, result

SPATIAL_SHAPES = [(2, 1, 1, 1), (1, 3, 2, 2), (4, 5, 3, 7), (3, 4, 5, 6)]


def maps(shape, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    C = shape[1]
    return (
        (3 * rng.standard_normal(shape) - 1).astype(dtype),
        rng.standard_normal(C).astype(dtype),
        rng.standard_normal(C).astype(dtype),
    )


def normalized(x, axis, eps):
    """(x - mean) / sqrt(var + eps) over ``axis``, in float64, and its error scale per entry."""
    x = x.astype(np.float64)
    mean, var = x.mean(axis=axis, keepdims=True), x.var(axis=axis, keepdims=True)
    std = np.sqrt(var + eps)
    n = x.size // mean.size
    condition = float((1 + mean**2 / (var + eps)).max())
    scale = 1 + 2 * np.abs(x).max(axis=axis, keepdims=True) / std
    return (x - mean) / std, bound(np.float64, n, condition) * scale


def nchw_to_rows(x):
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


@check(
    2,
    "to_rows gives an (N*H*W, C) matrix whose rows are the channel vectors, in both layouts, and from_rows gives x back exactly.",
)
def rows_round_trip(student):
    for layout in ("NCHW", "NHWC"):
        x, _, _ = maps((3, 4, 5, 6), seed=0)
        if layout == "NHWC":
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        rows = np.asarray(student.to_rows(x, layout))
        channels = x.shape[1] if layout == "NCHW" else x.shape[3]
        if rows.shape != (3 * 5 * 6, channels):
            raise Failed(f"to_rows({layout}) returned shape {rows.shape}, expected {(90, channels)}")
        want = nchw_to_rows(x) if layout == "NCHW" else x.reshape(-1, channels)
        if sorted(map(tuple, rows)) != sorted(map(tuple, want)):
            raise Failed(f"the rows of to_rows({layout}) are not the channel vectors x[n, :, h, w]")
        back = np.asarray(student.from_rows(rows, x.shape, layout))
        if back.shape != x.shape or not np.array_equal(back, x):
            raise Failed(f"from_rows(to_rows(x), x.shape, '{layout}') does not give x back")


@check(1, "from_rows returns a C-contiguous array in the dtype of its input, as its docstring promises.")
def from_rows_is_contiguous(student):
    for layout, shape in (("NCHW", (2, 3, 4, 5)), ("NHWC", (2, 4, 5, 3))):
        C = shape[1] if layout == "NCHW" else shape[3]
        rows = np.ascontiguousarray(np.random.default_rng(1).standard_normal((C, 40)).astype(np.float32).T)
        out = student.from_rows(rows, shape, layout)
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape:
            raise Failed(f"from_rows({layout}) must return a float32 array of shape {shape}")
        if not student.contiguous[0]:
            raise Failed(
                f"from_rows(rows, shape, '{layout}') returned a non-contiguous view: make it C-contiguous (np.ascontiguousarray)"
            )


def spatial_expected(x, gamma, beta, layout, eps=1e-5):
    nchw = x if layout == "NCHW" else x.transpose(0, 3, 1, 2)
    x_hat, err = normalized(nchw, (0, 2, 3), eps)
    g, b = gamma.reshape(1, -1, 1, 1), beta.reshape(1, -1, 1, 1)
    out, tolerance = g * x_hat + b, err * np.abs(g) + bound(np.float64, 1) * np.abs(b)
    if layout == "NHWC":
        out, tolerance = out.transpose(0, 2, 3, 1), tolerance.transpose(0, 2, 3, 1)
    return out, tolerance


@check(
    3, "Spatial BN equals BN of the (N*H*W, C) matrix of channel vectors, running statistics included, in both layouts."
)
def spatial_forward_is_bn_of_the_rows(student):
    for shape in SPATIAL_SHAPES:
        for layout in ("NCHW", "NHWC"):
            x, gamma, beta = maps(shape, seed=sum(shape))
            if layout == "NHWC":
                x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            bn_param = {"mode": "train"}
            out, _ = result(
                student.spatial_batchnorm_forward(x, gamma, beta, bn_param, layout=layout),
                2,
                "spatial_batchnorm_forward",
            )
            expected, tolerance = spatial_expected(x, gamma, beta, layout)
            close(out, expected, tolerance, f"the output for x of shape {shape} ({layout})", np.float64)
            rows = nchw_to_rows(x) if layout == "NCHW" else x.reshape(-1, shape[1])
            close(
                bn_param.get("running_var"),
                0.9 + 0.1 * rows.var(axis=0),
                bound(np.float64, len(rows), 10) * (1 + rows.var(axis=0) + rows.mean(axis=0) ** 2),
                f"running_var for x of shape {shape} ({layout})",
            )


def gradient_check_against_master(student, backward, master_forward, master_backward, x, args, what, dtype=np.float64):
    """The student's backward on the master's cache against the master's gradients (float64)."""
    rng = np.random.default_rng(99)
    dout = rng.standard_normal(x.shape).astype(dtype)
    _, cache64 = master_forward(
        x.astype(np.float64), *[a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in args]
    )
    expected = master_backward(dout.astype(np.float64), cache64)
    _, cache = master_forward(x, *args)
    got = result(getattr(student, backward)(dout, cache), 3, backward)
    # Error bound: the closed form's terms, each of size |gamma| * |dout| / std, summed over the group of n values.
    n = x.size // (cache64.std.size if hasattr(cache64, "std") else cache64.bn.std.size)
    magnitude = (
        np.abs(dout).max()
        * np.abs(args[0]).max()
        * 4
        / float(np.min(cache64.std if hasattr(cache64, "std") else cache64.bn.std))
    )
    b = bound(dtype, n, 10, factor=32)
    for name, g, e in zip(("dx", "dgamma", "dbeta"), got, expected, strict=True):
        scale = magnitude * (3 if name == "dx" else np.abs(dout).size)
        close(g, e, b * scale, f"{name} ({what})", dtype)


@check(3, "The spatial backward pass gives the right dx, dgamma and dbeta in both layouts.")
def spatial_backward_is_right(student):
    for layout in ("NCHW", "NHWC"):
        x, gamma, beta = maps((2, 3, 2, 3), seed=2)
        if layout == "NHWC":
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))

        def forward(x, g, b, layout=layout):
            return master.spatial_batchnorm_forward(x, g, b, {"mode": "train"}, layout=layout)

        gradient_check_against_master(
            student,
            "spatial_batchnorm_backward",
            forward,
            master.spatial_batchnorm_backward,
            x,
            (gamma, beta),
            layout,
        )


@check(1, "Spatial BN keeps float32: float32 feature maps give float32 outputs and gradients.")
def spatial_keeps_float32(student):
    x, gamma, beta = maps((4, 3, 5, 5), seed=3, dtype=np.float32)
    out, _ = result(
        student.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"}), 2, "spatial_batchnorm_forward"
    )
    expected, tolerance = spatial_expected(x, gamma, beta, "NCHW")
    close(out, expected, tolerance * 2**29, "the float32 output", np.float32)
    gradient_check_against_master(
        student,
        "spatial_batchnorm_backward",
        lambda x, g, b: master.spatial_batchnorm_forward(x, g, b, {"mode": "train"}),
        master.spatial_batchnorm_backward,
        x,
        (gamma, beta),
        "float32",
        np.float32,
    )


@check(3, "LayerNorm equals gamma * (x - row mean) / sqrt(row var + eps) + beta, for the eps given.")
def layernorm_matches_the_formula(student):
    for shape, eps in (((1, 4), 0.01), ((2, 9), 0.01), ((7, 30), 1e-5), ((3, 5), 0.5)):
        rng = np.random.default_rng(sum(shape))
        x, gamma, beta = (
            2 * rng.standard_normal(shape) + 1,
            rng.standard_normal(shape[1]),
            rng.standard_normal(shape[1]),
        )
        out, _ = result(student.layernorm_forward(x, gamma, beta, {"eps": eps}), 2, "layernorm_forward")
        x_hat, err = normalized(x, 1, eps)
        close(
            out,
            gamma * x_hat + beta,
            err * np.abs(gamma) + bound(np.float64, 1) * np.abs(beta),
            f"the output for x of shape {shape}, eps = {eps}",
            np.float64,
        )


@check(3, "layernorm_backward gives the right dx, dgamma and dbeta.")
def layernorm_backward_is_right(student):
    for shape in ((1, 4), (2, 9), (7, 30), (4, 6)):
        rng = np.random.default_rng(sum(shape))
        x, gamma, beta = (
            2 * rng.standard_normal(shape) + 1,
            rng.standard_normal(shape[1]),
            rng.standard_normal(shape[1]),
        )
        gradient_check_against_master(
            student,
            "layernorm_backward",
            lambda x, g, b: master.layernorm_forward(x, g, b, {}),
            master.layernorm_backward,
            x,
            (gamma, beta),
            f"x of shape {shape}",
        )


@check(1, "A sample's LayerNorm output is the same alone or in a batch.")
def layernorm_is_per_sample(student):
    x, gamma, beta = maps((5, 6, 1, 1), seed=4)
    x = x.reshape(5, 6)
    batch, _ = result(student.layernorm_forward(x, gamma, beta, {}), 2, "layernorm_forward")
    alone, _ = result(student.layernorm_forward(x[2:3].copy(), gamma, beta, {}), 2, "layernorm_forward")
    _, err = normalized(x[2:3], 1, 1e-5)
    close(
        np.asarray(alone)[0],
        np.asarray(batch)[2],
        2 * (err * np.abs(gamma) + bound(np.float64, 1) * np.abs(beta))[0],
        "sample 2 alone against in the batch",
    )


@check(3, "GroupNorm standardizes each group of C/G channels per sample, for G = 1, 2 and C, for the eps given.")
def groupnorm_matches_the_formula(student):
    for G in (1, 2, 6):
        x, gamma, beta = maps((3, 6, 2, 3), seed=G)
        eps = 1e-4 if G != 2 else 0.3
        out, _ = result(student.groupnorm_forward(x, gamma, beta, G, {"eps": eps}), 2, "groupnorm_forward")
        x_hat, err = normalized(x.reshape(3, G, -1), 2, eps)
        g, b = gamma[:, None, None], beta[:, None, None]
        expected = g * x_hat.reshape(x.shape) + b
        tolerance = np.broadcast_to(err, x_hat.shape).reshape(x.shape) * np.abs(g) + bound(np.float64, 1) * np.abs(b)
        close(out, expected, tolerance, f"the output with G = {G}, eps = {eps}", np.float64)


@check(3, "groupnorm_backward gives the right dx, dgamma and dbeta for G = 1, 2 and C.")
def groupnorm_backward_is_right(student):
    for G in (1, 2, 6):
        x, gamma, beta = maps((3, 6, 2, 3), seed=G)
        gradient_check_against_master(
            student,
            "groupnorm_backward",
            lambda x, g, b, G=G: master.groupnorm_forward(x, g, b, G, {}),
            master.groupnorm_backward,
            x,
            (gamma, beta),
            f"G = {G}",
        )


@check(1, "LayerNorm and GroupNorm keep float32: float32 input gives float32 outputs and gradients.")
def per_sample_norms_keep_float32(student):
    x = np.random.default_rng(6).standard_normal((4, 4, 3, 3)).astype(np.float32)
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)
    out, _ = result(student.groupnorm_forward(x, ones, zeros, 2, {}), 2, "groupnorm_forward")
    x_hat, err = normalized(x.reshape(4, 2, -1), 2, 1e-5)
    close(
        out,
        x_hat.reshape(x.shape),
        np.broadcast_to(err, x_hat.shape).reshape(x.shape) * 2**29,
        "GroupNorm's float32 output",
        np.float32,
    )
    gradient_check_against_master(
        student,
        "groupnorm_backward",
        lambda x, g, b: master.groupnorm_forward(x, g, b, 2, {}),
        master.groupnorm_backward,
        x,
        (ones, zeros),
        "GroupNorm, float32",
        np.float32,
    )
    flat = x.reshape(4, -1)
    out, _ = result(
        student.layernorm_forward(flat, np.ones(36, np.float32), np.zeros(36, np.float32), {}), 2, "layernorm_forward"
    )
    x_hat, err = normalized(flat, 1, 1e-5)
    close(out, x_hat, err * 2**29, "LayerNorm's float32 output", np.float32)
    gradient_check_against_master(
        student,
        "layernorm_backward",
        lambda x, g, b: master.layernorm_forward(x, g, b, {}),
        master.layernorm_backward,
        flat,
        (np.ones(36, np.float32), np.zeros(36, np.float32)),
        "LayerNorm, float32",
        np.float32,
    )


@check(1, "Your functions do not modify their inputs (x, gamma, beta, dout or the cache).")
def inputs_are_not_modified(student):
    student.modified.clear()
    x, gamma, beta = maps((2, 4, 3, 3), seed=7)
    dout = np.random.default_rng(8).standard_normal(x.shape)
    student.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    student.spatial_batchnorm_backward(dout, master.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})[1])
    student.groupnorm_forward(x, gamma, beta, 2, {})
    student.groupnorm_backward(dout, master.groupnorm_forward(x, gamma, beta, 2, {})[1])
    flat, fdout = x.reshape(2, -1), dout.reshape(2, -1)
    ones = np.ones(flat.shape[1])
    student.layernorm_forward(flat, ones, 0 * ones, {})
    student.layernorm_backward(fdout, master.layernorm_forward(flat, ones, 0 * ones, {})[1])
    student.to_rows(x, "NCHW")
    student.from_rows(nchw_to_rows(x).copy(), x.shape, "NCHW")
    if student.modified:
        function, name = student.modified[0]
        raise Failed(
            f"your function modified its input: {function} changed its argument {name} in place (compute new arrays instead)"
        )
