"""The grader's mutation catalogue: realistic student mistakes, and correct answers written differently.

Each ``Mistake`` changes one thing in the master's solution of one function
(``old`` -> ``new``, inside that function only), the kind of bug students
make in CS231n-style batch normalization assignments; the hidden checks must
take points off its part for every one of them. Each ``Alternative``
replaces whole functions with a correct implementation written another way
(another order of operations, another formula, another numpy idiom); it must
get full marks. ``make grader-check`` runs both (classroom/selftest).
"""

from __future__ import annotations

from dataclasses import dataclass

from .regions import function_spans, regions

BN, CONV, SPATIAL, LN = (
    "bnhelpers/batchnorm.py",
    "bnhelpers/conventions.py",
    "bnhelpers/spatial.py",
    "bnhelpers/layernorm.py",
)


@dataclass(frozen=True)
class Mistake:
    name: str
    part: int
    path: str
    function: str
    old: str
    new: str


M = Mistake
MISTAKES = (
    # --- Part 1: forward -------------------------------------------------------------------------------
    M(
        "unbiased batch variance",
        1,
        BN,
        "batchnorm_forward",
        "var = (xc**2).sum(axis=0) / N",
        "var = (xc**2).sum(axis=0) / (N - 1)",
    ),
    M(
        "eps outside the square root",
        1,
        BN,
        "batchnorm_forward",
        "std = np.sqrt(var + settings.eps)",
        "std = np.sqrt(var) + settings.eps",
    ),
    M(
        "eps dropped in the forward pass",
        1,
        BN,
        "batchnorm_forward",
        "std = np.sqrt(var + settings.eps)",
        "std = np.sqrt(var)",
    ),
    M(
        "eps hard-coded in the forward pass",
        1,
        BN,
        "batchnorm_forward",
        "std = np.sqrt(var + settings.eps)",
        "std = np.sqrt(var + 1e-5)",
    ),
    M("mean over the whole batch matrix", 1, BN, "batchnorm_forward", "mean = x.sum(axis=0) / N", "mean = x.mean()"),
    M(
        "statistics over the features (axis 1)",
        1,
        BN,
        "batchnorm_forward",
        "mean = x.sum(axis=0) / N\n        xc = x - mean\n        var = (xc**2).sum(axis=0) / N",
        "mean = x.mean(axis=1, keepdims=True)\n        xc = x - mean\n        var = (xc**2).mean(axis=1, keepdims=True)",
    ),
    M(
        "test mode normalizes with the batch statistics",
        1,
        BN,
        "batchnorm_forward",
        "mean, var = settings.running_mean, settings.running_var",
        "mean, var = x.mean(axis=0), x.var(axis=0)",
    ),
    M(
        "test mode also updates the running statistics (with them as the batch)",
        1,
        BN,
        "batchnorm_forward",
        "mean, var = settings.running_mean, settings.running_var",
        "mean, var = settings.running_mean, settings.running_var\n        bn_param['running_mean'], bn_param['running_var'] = settings.convention.update(\n            settings.running_mean, settings.running_var, mean, var, len(x), settings.momentum, settings.batches_seen + 1\n        )",
    ),
    M(
        "running statistics computed but not stored",
        1,
        BN,
        "batchnorm_forward",
        'bn_param["running_mean"], bn_param["running_var"] = settings.convention.update(',
        "_ = settings.convention.update(",
    ),
    M(
        "this batch not counted (cumulative average off by one)",
        1,
        BN,
        "batchnorm_forward",
        "settings.momentum, settings.batches_seen + 1",
        "settings.momentum, max(settings.batches_seen, 1)",
    ),
    M("momentum hard-coded to 0.9", 1, BN, "batchnorm_forward", "N, settings.momentum,", "N, 0.9,"),
    M("gamma and beta swapped", 1, BN, "batchnorm_forward", "out = gamma * x_hat + beta", "out = beta * x_hat + gamma"),
    M("x centred in place", 1, BN, "batchnorm_forward", "x_hat = xc / std", "x -= mean\n    x_hat = x / std"),
    M(
        "output always float64",
        1,
        BN,
        "batchnorm_forward",
        "out = gamma * x_hat + beta",
        "out = (gamma * x_hat + beta).astype(np.float64)",
    ),
    M(
        "running variance fed the standard deviation",
        1,
        BN,
        "batchnorm_forward",
        "settings.running_var, mean, var, N",
        "settings.running_var, mean, np.sqrt(var), N",
    ),
    # --- Part 1: staged backward -----------------------------------------------------------------------
    M(
        "np.ones without a dtype: float64 gradients from float32 input",
        1,
        BN,
        "batchnorm_backward",
        "dsq = np.ones_like(dout) * dvar / N",
        "dsq = np.ones(dout.shape) * dvar / N",
    ),
    M(
        "first path into xc overwritten, not added",
        1,
        BN,
        "batchnorm_backward",
        "dxc = dxc + 2 * xc * dsq",
        "dxc = 2 * xc * dsq",
    ),
    M("gradient through the mean dropped", 1, BN, "batchnorm_backward", "dx = dxc + dmean / N", "dx = dxc"),
    M(
        "sign of the reciprocal's derivative",
        1,
        BN,
        "batchnorm_backward",
        "dstd = -dinv_std / cache.std**2",
        "dstd = dinv_std / cache.std**2",
    ),
    M(
        "square root's derivative without the 2",
        1,
        BN,
        "batchnorm_backward",
        "dvar_eps = dstd / (2 * cache.std)",
        "dvar_eps = dstd / cache.std",
    ),
    M(
        "eps dropped in the staged backward",
        1,
        BN,
        "batchnorm_backward",
        "inv_std = 1 / cache.std",
        "inv_std = 1 / np.sqrt(cache.var)",
    ),
    M(
        "dgamma averaged, not summed",
        1,
        BN,
        "batchnorm_backward",
        "dgamma = (dscaled * cache.x_hat).sum(axis=0)",
        "dgamma = (dscaled * cache.x_hat).mean(axis=0)",
    ),
    M(
        "dbeta averaged, not summed",
        1,
        BN,
        "batchnorm_backward",
        "dbeta = dout.sum(axis=0)",
        "dbeta = dout.mean(axis=0)",
    ),
    M(
        "variance node divided by N - 1",
        1,
        BN,
        "batchnorm_backward",
        "dsq = np.ones_like(dout) * dvar / N",
        "dsq = np.ones_like(dout) * dvar / (N - 1)",
    ),
    M("gamma left out of dx_hat", 1, BN, "batchnorm_backward", "dx_hat = dscaled * cache.gamma", "dx_hat = dscaled"),
    # --- Part 1: closed-form backward ------------------------------------------------------------------
    M(
        "eps dropped in the closed form",
        1,
        BN,
        "batchnorm_backward_fast",
        "(N * cache.std)",
        "(N * np.sqrt(cache.var))",
    ),
    M(
        "eps hard-coded in the closed form",
        1,
        BN,
        "batchnorm_backward_fast",
        "(N * cache.std)",
        "(N * np.sqrt(cache.var + 1e-5))",
    ),
    M(
        "gamma left out of the closed form",
        1,
        BN,
        "batchnorm_backward_fast",
        "dx = cache.gamma / (N * cache.std)",
        "dx = 1 / (N * cache.std)",
    ),
    M("sign of the x_hat term", 1, BN, "batchnorm_backward_fast", "- cache.x_hat * dgamma", "+ cache.x_hat * dgamma"),
    M("N * dout written as dout", 1, BN, "batchnorm_backward_fast", "(N * dout - dbeta", "(dout - dbeta"),
    M(
        "divided by the variance, not the std",
        1,
        BN,
        "batchnorm_backward_fast",
        "(N * cache.std)",
        "(N * cache.std**2)",
    ),
    M(
        "dgamma from x instead of x_hat",
        1,
        BN,
        "batchnorm_backward_fast",
        "dgamma = (dout * cache.x_hat).sum(axis=0)",
        "dgamma = (dout * cache.x).sum(axis=0)",
    ),
    # --- Part 2 ----------------------------------------------------------------------------------------
    M(
        "weight_on_new ignores its momentum argument",
        2,
        CONV,
        "Convention.weight_on_new",
        "return momentum if self.momentum_is_new else 1 - momentum",
        "return self.momentum if self.momentum_is_new else 1 - self.momentum",
    ),
    M(
        "`if not momentum` for `if momentum is None`",
        2,
        CONV,
        "Convention.weight_on_new",
        "if momentum is None:",
        "if not momentum:",
    ),
    M(
        "momentum meanings swapped",
        2,
        CONV,
        "Convention.weight_on_new",
        "return momentum if self.momentum_is_new else 1 - momentum",
        "return 1 - momentum if self.momentum_is_new else momentum",
    ),
    M(
        "cumulative average off by one",
        2,
        CONV,
        "Convention.weight_on_new",
        "return 1 / num_batches_tracked",
        "return 1 / (num_batches_tracked + 1)",
    ),
    M(
        "Bessel's correction upside down",
        2,
        CONV,
        "Convention.update",
        "batch_var * n / (n - 1)",
        "batch_var * (n - 1) / n",
    ),
    M(
        "Bessel's correction never applied",
        2,
        CONV,
        "Convention.update",
        "stored_var = batch_var * n / (n - 1) if self.unbiased else batch_var",
        "stored_var = batch_var",
    ),
    M(
        "Bessel's correction always applied",
        2,
        CONV,
        "Convention.update",
        "stored_var = batch_var * n / (n - 1) if self.unbiased else batch_var",
        "stored_var = batch_var * n / (n - 1)",
    ),
    M(
        "weights of old and new swapped",
        2,
        CONV,
        "Convention.update",
        "new_mean = (1 - a) * running_mean + a * batch_mean",
        "new_mean = a * running_mean + (1 - a) * batch_mean",
    ),
    M(
        "running variance fed the biased variance",
        2,
        CONV,
        "Convention.update",
        "new_var = (1 - a) * running_var + a * stored_var",
        "new_var = (1 - a) * running_var + a * batch_var",
    ),
    M(
        "running mean updated in place",
        2,
        CONV,
        "Convention.update",
        "new_mean = (1 - a) * running_mean + a * batch_mean",
        "running_mean *= 1 - a\n        running_mean += a * batch_mean\n        new_mean = running_mean",
    ),
    M(
        "fold without eps",
        2,
        BN,
        "batchnorm_fold",
        "scale = gamma / np.sqrt(running_var + eps)",
        "scale = gamma / np.sqrt(running_var)",
    ),
    M(
        "fold with eps hard-coded",
        2,
        BN,
        "batchnorm_fold",
        "scale = gamma / np.sqrt(running_var + eps)",
        "scale = gamma / np.sqrt(running_var + 1e-5)",
    ),
    M(
        "folded bias forgets the running mean",
        2,
        BN,
        "batchnorm_fold",
        "b_folded = (b - running_mean) * scale + beta",
        "b_folded = b * scale + beta",
    ),
    M(
        "folded bias forgets beta",
        2,
        BN,
        "batchnorm_fold",
        "b_folded = (b - running_mean) * scale + beta",
        "b_folded = (b - running_mean) * scale",
    ),
    M(
        "W scaled along its input axis",
        2,
        BN,
        "batchnorm_fold",
        "W_folded = W * scale",
        "W_folded = W * scale[:, None]",
    ),
    M("W folded in place", 2, BN, "batchnorm_fold", "W_folded = W * scale", "W *= scale\n    W_folded = W"),
    # --- Part 3 ----------------------------------------------------------------------------------------
    M(
        "from_rows returns a non-contiguous view",
        3,
        SPATIAL,
        "from_rows",
        "x = np.ascontiguousarray(rows.T.reshape(C, N, H, W).transpose(1, 0, 2, 3))",
        "x = rows.T.reshape(C, N, H, W).transpose(1, 0, 2, 3)",
    ),
    M(
        "to_rows reshapes NCHW without moving the channels",
        3,
        SPATIAL,
        "to_rows",
        "rows = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1).T",
        "rows = x.reshape(-1, x.shape[1])",
    ),
    M(
        "from_rows reshapes without moving the channels back",
        3,
        SPATIAL,
        "from_rows",
        "rows.T.reshape(C, N, H, W).transpose(1, 0, 2, 3)",
        "rows.reshape(N, C, H, W)",
    ),
    M(
        "to_rows ignores the NHWC layout",
        3,
        SPATIAL,
        "to_rows",
        'if layout == "NHWC":',
        'if layout == "channels_last":',
    ),
    M(
        "spatial backward reshapes instead of from_rows",
        3,
        SPATIAL,
        "spatial_batchnorm_backward",
        "dx = from_rows(dx_rows, cache.shape, cache.layout)",
        "dx = dx_rows.reshape(cache.shape)",
    ),
    M(
        "spatial forward upcasts to float64",
        3,
        SPATIAL,
        "spatial_batchnorm_forward",
        "out = from_rows(out_rows, x.shape, layout)",
        "out = from_rows(out_rows, x.shape, layout).astype(np.float64)",
    ),
    M(
        "LayerNorm statistics over the batch",
        3,
        LN,
        "layernorm_forward",
        "mean = x.mean(axis=1, keepdims=True)\n    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)",
        "mean = x.mean(axis=0, keepdims=True)\n    var = ((x - mean) ** 2).mean(axis=0, keepdims=True)",
    ),
    M(
        "LayerNorm eps outside the square root",
        3,
        LN,
        "layernorm_forward",
        "std = np.sqrt(var + eps)",
        "std = np.sqrt(var) + eps",
    ),
    M(
        "LayerNorm unbiased variance",
        3,
        LN,
        "layernorm_forward",
        "var = ((x - mean) ** 2).mean(axis=1, keepdims=True)",
        "var = x.var(axis=1, ddof=1, keepdims=True)",
    ),
    M("LayerNorm eps hard-coded", 3, LN, "layernorm_forward", "std = np.sqrt(var + eps)", "std = np.sqrt(var + 1e-5)"),
    M("LayerNorm backward forgets gamma", 3, LN, "layernorm_backward", "dx_hat = dout * cache.gamma", "dx_hat = dout"),
    M(
        "LayerNorm backward drops the x_hat term",
        3,
        LN,
        "layernorm_backward",
        "dx = (dx_hat - mean_dx_hat - cache.x_hat * mean_dx_hat_x_hat) / cache.std",
        "dx = (dx_hat - mean_dx_hat) / cache.std",
    ),
    M(
        "LayerNorm input centred in place",
        3,
        LN,
        "layernorm_forward",
        "x_hat = (x - mean) / std",
        "x -= mean\n    x_hat = x / std",
    ),
    M(
        "GroupNorm groups interleaved",
        3,
        LN,
        "groupnorm_forward",
        "groups = x.reshape(N, G, -1)",
        "groups = x.reshape(N, -1, G).transpose(0, 2, 1)",
    ),
    M(
        "GroupNorm forgets beta",
        3,
        LN,
        "groupnorm_forward",
        "out = gamma.reshape(1, C, 1, 1) * x_hat + beta.reshape(1, C, 1, 1)",
        "out = gamma.reshape(1, C, 1, 1) * x_hat",
    ),
    M("GroupNorm backward reads G from the wrong axis", 3, LN, "groupnorm_backward", "G = cache.std.shape[1]", "G = 1"),
    M(
        "GroupNorm backward drops the mean term",
        3,
        LN,
        "groupnorm_backward",
        "dx = ((dx_hat - mean_dx_hat - x_hat",
        "dx = ((dx_hat - x_hat",
    ),
)


@dataclass(frozen=True)
class Alternative:
    """A correct implementation written differently: {path: {function: source of the whole function}}."""

    name: str
    part: int
    functions: dict


def body(signature, docstring, *lines, indent=""):
    """The source of a function (``indent``: four spaces for a method)."""
    inner = indent + "    "
    return "\n".join([indent + signature, f'{inner}"""{docstring}"""', *(inner + line for line in lines)]) + "\n"


ALTERNATIVES = (
    Alternative(
        "one-pass variance E[x^2] - E[x]^2, np.mean, and the CS231n backward route through dvar and dmean",
        1,
        {
            BN: {
                "batchnorm_forward": body(
                    "def batchnorm_forward(x, gamma, beta, bn_param):",
                    "One-pass statistics.",
                    "x, gamma, beta, settings = batchnorm_inputs(x, gamma, beta, bn_param)",
                    "if settings.mode == 'train':",
                    "    mean = np.mean(x, axis=0)",
                    "    var = np.mean(x * x, axis=0) - mean * mean",
                    "    new = settings.convention.update(settings.running_mean, settings.running_var, mean, var, x.shape[0], settings.momentum, settings.batches_seen + 1)",
                    "    bn_param['running_mean'], bn_param['running_var'] = new",
                    "    bn_param['num_batches_tracked'] = settings.batches_seen + 1",
                    "else:",
                    "    mean, var = settings.running_mean, settings.running_var",
                    "std = (var + settings.eps) ** 0.5",
                    "x_hat = (x - mean) * (1 / std)",
                    "return x_hat * gamma + beta, BatchNormCache(settings.mode, x, x_hat, mean, var, std, gamma)",
                ),
                "batchnorm_backward": body(
                    "def batchnorm_backward(dout, cache):",
                    "CS231n's route: dvar, then dmean, then dx.",
                    "dout = check_norm_backward(dout, cache, BatchNormCache, 'batchnorm_forward')",
                    "if cache.mode == 'test':",
                    "    return _test_mode_backward(dout, cache)",
                    "N = dout.shape[0]",
                    "xc = cache.x - cache.mean",
                    "dx_hat = dout * cache.gamma",
                    "dvar = np.sum(dx_hat * xc, axis=0) * -0.5 * cache.std**-3",
                    "dmean = np.sum(-dx_hat / cache.std, axis=0) + dvar * np.mean(-2 * xc, axis=0)",
                    "dx = dx_hat / cache.std + dvar * 2 * xc / N + dmean / N",
                    "return dx, np.sum(dout * cache.x_hat, axis=0), np.sum(dout, axis=0)",
                ),
                "batchnorm_backward_fast": body(
                    "def batchnorm_backward_fast(dout, cache):",
                    "The closed form with means instead of sums.",
                    "dout = check_norm_backward(dout, cache, BatchNormCache, 'batchnorm_forward')",
                    "if cache.mode == 'test':",
                    "    return _test_mode_backward(dout, cache)",
                    "dx_hat = dout * cache.gamma",
                    "dx = (dx_hat - dx_hat.mean(axis=0) - cache.x_hat * (dx_hat * cache.x_hat).mean(axis=0)) / cache.std",
                    "return dx, (dout * cache.x_hat).sum(axis=0), dout.sum(axis=0)",
                ),
            }
        },
    ),
    Alternative(
        "np.var and einsum; the closed form from xc and the variance",
        1,
        {
            BN: {
                "batchnorm_forward": body(
                    "def batchnorm_forward(x, gamma, beta, bn_param):",
                    "np.var, and the update written out through the convention's weight.",
                    "x, gamma, beta, settings = batchnorm_inputs(x, gamma, beta, bn_param)",
                    "mean, var = (x.mean(0), x.var(0)) if settings.mode == 'train' else (settings.running_mean, settings.running_var)",
                    "if settings.mode == 'train':",
                    "    bn_param['running_mean'], bn_param['running_var'] = settings.convention.update(",
                    "        settings.running_mean, settings.running_var, mean, var, len(x), settings.momentum, settings.batches_seen + 1)",
                    "    bn_param['num_batches_tracked'] = settings.batches_seen + 1",
                    "std = np.sqrt(var + settings.eps)",
                    "x_hat = (x - mean) / std",
                    "return np.einsum('nd,d->nd', x_hat, gamma) + beta, BatchNormCache(settings.mode, x, x_hat, mean, var, std, gamma)",
                ),
                "batchnorm_backward_fast": body(
                    "def batchnorm_backward_fast(dout, cache):",
                    "From xc and the cached std.",
                    "dout = check_norm_backward(dout, cache, BatchNormCache, 'batchnorm_forward')",
                    "if cache.mode == 'test':",
                    "    return _test_mode_backward(dout, cache)",
                    "N = len(dout)",
                    "xc = cache.x - cache.mean",
                    "dbeta = np.einsum('nd->d', dout)",
                    "dgamma = np.einsum('nd,nd->d', dout, cache.x_hat)",
                    "dx = cache.gamma / cache.std * (dout - dbeta / N - xc * np.einsum('nd,nd->d', dout, xc) / (N * cache.std**2))",
                    "return dx, dgamma, dbeta",
                ),
            }
        },
    ),
    Alternative(
        "running + a * (batch - running), Bessel as var * (n / (n - 1)), explicit branches",
        2,
        {
            CONV: {
                "Convention.weight_on_new": body(
                    "def weight_on_new(self, momentum, num_batches_tracked):",
                    "Explicit branches.",
                    "if momentum is None:",
                    "    a = 1.0 / num_batches_tracked",
                    "elif self.momentum_is_new:",
                    "    a = momentum",
                    "else:",
                    "    a = 1.0 - momentum",
                    "return a",
                    indent="    ",
                ),
                "Convention.update": body(
                    "def update(self, running_mean, running_var, batch_mean, batch_var, n, momentum, num_batches_tracked):",
                    "Move a fraction a of the way.",
                    "a = self.weight_on_new(momentum, num_batches_tracked)",
                    "if self.unbiased:",
                    "    batch_var = batch_var * (n / (n - 1))",
                    "new_mean = running_mean + a * (batch_mean - running_mean)",
                    "new_var = running_var + a * (batch_var - running_var)",
                    "return new_mean.astype(running_mean.dtype, copy=False), new_var.astype(running_var.dtype, copy=False)",
                    indent="    ",
                ),
            },
            BN: {
                "batchnorm_fold": body(
                    "def batchnorm_fold(W, b, gamma, beta, running_mean, running_var, eps=1e-5):",
                    "Scale columns with broadcasting; bias as beta - mean * scale + b * scale.",
                    "W, b, eps = batchnorm_fold_inputs(W, b, gamma, beta, running_mean, running_var, eps)",
                    "scale = gamma * (running_var + eps) ** -0.5",
                    "W_folded = W * scale[np.newaxis, :]",
                    "b_folded = beta - running_mean * scale + b * scale",
                    "return W_folded.astype(W.dtype, copy=False), b_folded.astype(W.dtype, copy=False)",
                ),
            },
        },
    ),
    Alternative(
        "np.moveaxis for the rows; spatial BN through the staged backward",
        3,
        {
            SPATIAL: {
                "to_rows": body(
                    "def to_rows(x, layout):",
                    "Channels to the last axis, then one row per position.",
                    "channels_last = x if layout == 'NHWC' else np.moveaxis(x, 1, -1)",
                    "return channels_last.reshape(-1, channels_last.shape[-1])",
                ),
                "from_rows": body(
                    "def from_rows(rows, shape, layout):",
                    "Back to the layout, contiguous.",
                    "if layout == 'NHWC':",
                    "    return np.ascontiguousarray(rows.reshape(shape))",
                    "N, C, H, W = shape",
                    "return np.ascontiguousarray(np.moveaxis(rows.reshape(N, H, W, C), -1, 1))",
                ),
                "spatial_batchnorm_backward": body(
                    "def spatial_batchnorm_backward(dout, cache):",
                    "The staged backward pass on the rows.",
                    "dout = check_norm_backward(dout, cache, SpatialCache, 'spatial_batchnorm_forward')",
                    "from .batchnorm import batchnorm_backward",
                    "",
                    "dx_rows, dgamma, dbeta = batchnorm_backward(to_rows(dout, cache.layout), cache.bn)",
                    "return from_rows(dx_rows, cache.shape, cache.layout), dgamma, dbeta",
                ),
            }
        },
    ),
    Alternative(
        "LayerNorm and GroupNorm with np.var and sums instead of means",
        3,
        {
            LN: {
                "layernorm_forward": body(
                    "def layernorm_forward(x, gamma, beta, ln_param):",
                    "np.var per row.",
                    "x, gamma, beta, eps = layernorm_inputs(x, gamma, beta, ln_param)",
                    "std = np.sqrt(x.var(axis=1, keepdims=True) + eps)",
                    "x_hat = (x - x.mean(axis=1, keepdims=True)) / std",
                    "return x_hat * gamma + beta, NormCache('layernorm_forward', x_hat, std, gamma)",
                ),
                "layernorm_backward": body(
                    "def layernorm_backward(dout, cache):",
                    "Sums over the D features, divided once.",
                    "dout = check_norm_backward(dout, cache, NormCache, 'layernorm_forward')",
                    "D = dout.shape[1]",
                    "dx_hat = dout * cache.gamma",
                    "total = dx_hat.sum(axis=1, keepdims=True)",
                    "total_x = (dx_hat * cache.x_hat).sum(axis=1, keepdims=True)",
                    "dx = (D * dx_hat - total - cache.x_hat * total_x) / (D * cache.std)",
                    "return dx, (dout * cache.x_hat).sum(axis=0), dout.sum(axis=0)",
                ),
                "groupnorm_forward": body(
                    "def groupnorm_forward(x, gamma, beta, G, gn_param):",
                    "np.var per group.",
                    "x, gamma, beta, G, eps = groupnorm_inputs(x, gamma, beta, G, gn_param)",
                    "N, C, H, W = x.shape",
                    "groups = x.reshape(N, G, C // G * H * W)",
                    "std = np.sqrt(groups.var(axis=-1, keepdims=True) + eps)",
                    "x_hat = ((groups - groups.mean(axis=-1, keepdims=True)) / std).reshape(x.shape)",
                    "out = x_hat * gamma[:, None, None] + beta[:, None, None]",
                    "return out, NormCache('groupnorm_forward', x_hat, std, gamma)",
                ),
            }
        },
    ),
)


def apply_mistake(source, mistake):
    """``source`` with the mistake made inside its function; ValueError if ``old`` is not there exactly once."""
    first, end = function_spans(source)[mistake.function]
    lines = source.splitlines(keepends=True)
    ((begin, stop),) = regions([line.rstrip("\n") for line in lines[first:end]])  # the solution region only
    first, end = first + begin, first + stop
    span = "".join(lines[first:end])
    if span.count(mistake.old) != 1:
        raise ValueError(
            f"{mistake.name}: {mistake.old!r} occurs {span.count(mistake.old)} times in {mistake.function}"
        )
    return "".join(lines[:first]) + span.replace(mistake.old, mistake.new) + "".join(lines[end:])


def apply_alternative(source, functions):
    """``source`` with each function of ``functions`` ({qualified name: source}) replaced whole."""
    spans = function_spans(source)
    lines = source.splitlines(keepends=True)
    for name in sorted(functions, key=lambda n: spans[n][0], reverse=True):
        first, end = spans[name]
        lines[first:end] = [functions[name]]
    return "".join(lines)
