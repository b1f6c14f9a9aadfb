"""Each convention preset reproduces its framework's running statistics.

The expected values are computed here from the formulas the frameworks
document (torch.nn.BatchNorm1d, keras.layers.BatchNormalization,
tf.compat.v1.layers.batch_normalization, tf.contrib.layers.batch_norm, and
the CS231n assignment's batchnorm_forward), written out independently of
bnhelpers.conventions. When PyTorch is installed (requirements-bench.txt) the
'pytorch' preset is also compared with it directly.
"""

import numpy as np
import pytest

import bnhelpers as bh
from bnhelpers import BatchNorm1d, BatchNorm2d, batchnorm_forward, conventions_table, mlp, small_cnn

# weight of the NEW batch value in the running average, eps, initial running
# variance, and whether the stored variance is unbiased (n / (n - 1)).
DOCUMENTED = {
    "course": dict(new=0.1, eps=1e-5, var0=1.0, unbiased=False),
    "pytorch": dict(new=0.1, eps=1e-5, var0=1.0, unbiased=True),  # momentum=0.1 weights the new value
    "keras": dict(new=0.01, eps=1e-3, var0=1.0, unbiased=False),  # momentum=0.99 weights the old value
    "tf1_layers": dict(new=0.01, eps=1e-3, var0=1.0, unbiased=False),  # tf.layers.batch_normalization, momentum=0.99
    "tf1": dict(new=0.001, eps=1e-3, var0=1.0, unbiased=True),  # contrib batch_norm: decay=0.999, fused kernel
    "cs231n": dict(new=0.1, eps=1e-5, var0=0.0, unbiased=False),  # running_var starts at zeros
}


def batches(k=7, N=6, D=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-2, 5, D) + rng.uniform(0.5, 3, D) * rng.standard_normal((N, D)) for _ in range(k)]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_running_statistics_and_test_output_follow_the_documented_formulas(name):
    doc = DOCUMENTED[name]
    data = batches()
    _N, D = data[0].shape
    gamma, beta = np.linspace(0.5, 2, D), np.linspace(-1, 1, D)
    p = {"mode": "train", "convention": name}
    mean, var = np.zeros(D), np.full(D, doc["var0"])
    for b in data:
        batchnorm_forward(b, gamma, beta, p)
        a = doc["new"]
        mean = (1 - a) * mean + a * b.mean(axis=0)
        var = (1 - a) * var + a * b.var(axis=0, ddof=1 if doc["unbiased"] else 0)
    np.testing.assert_allclose(p["running_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(p["running_var"], var, rtol=1e-12)

    x = np.random.default_rng(1).standard_normal((3, D))
    out, _ = batchnorm_forward(x, gamma, beta, dict(p, mode="test"))
    np.testing.assert_allclose(out, gamma * (x - mean) / np.sqrt(var + doc["eps"]) + beta, rtol=1e-12)


@pytest.mark.parametrize("name", DOCUMENTED)
def test_training_output_is_the_same_for_every_convention_up_to_eps(name):
    b = batches(k=1)[0]
    D = b.shape[1]
    out, _ = batchnorm_forward(b, np.ones(D), np.zeros(D), {"mode": "train", "convention": name})
    expected = (b - b.mean(0)) / np.sqrt(b.var(0) + DOCUMENTED[name]["eps"])
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_explicit_keys_override_the_preset_in_its_own_meaning():
    b = batches(k=1)[0]
    D = b.shape[1]
    torch_like = {"mode": "train", "convention": "pytorch", "momentum": 0.3}
    keras_like = {"mode": "train", "convention": "keras", "momentum": 0.7, "eps": 1e-5}
    batchnorm_forward(b, np.ones(D), np.zeros(D), torch_like)
    batchnorm_forward(b, np.ones(D), np.zeros(D), keras_like)
    np.testing.assert_allclose(torch_like["running_mean"], 0.3 * b.mean(0))  # PyTorch: weight on the new value
    np.testing.assert_allclose(keras_like["running_mean"], 0.3 * b.mean(0))  # Keras: 0.7 kept on the old value


def test_pytorch_cumulative_average_with_momentum_none():
    data = batches(k=5)
    D = data[0].shape[1]
    p = {"mode": "train", "convention": "pytorch", "momentum": None}
    for b in data:
        batchnorm_forward(b, np.ones(D), np.zeros(D), p)
    np.testing.assert_allclose(p["running_mean"], np.mean([b.mean(0) for b in data], axis=0), rtol=1e-12)
    np.testing.assert_allclose(p["running_var"], np.mean([b.var(0, ddof=1) for b in data], axis=0), rtol=1e-12)


def test_layers_and_builders_with_momentum_none_keep_the_cumulative_average():
    """momentum=None means what it means in the functional API and in PyTorch, not "the preset's default"."""
    data = batches(k=5)
    D = data[0].shape[1]
    layer = BatchNorm1d(D, convention="pytorch", momentum=None, dtype=np.float64)
    net = mlp((D, D, 2), norm="batch", bn_options={"convention": "pytorch", "momentum": None}, dtype=np.float64)
    net.layers[0].params["W"][...] = np.eye(D)  # the BN layer then sees the batches themselves
    for b in data:
        layer.forward(b)
        net.forward(b)
    expected_mean = np.mean([b.mean(0) for b in data], axis=0)
    expected_var = np.mean([b.var(0, ddof=1) for b in data], axis=0)
    for bn in (layer, net.layers[1]):
        assert bn.bn_param["momentum"] is None
        np.testing.assert_allclose(bn.bn_param["running_mean"], expected_mean, rtol=1e-12)
        np.testing.assert_allclose(bn.bn_param["running_var"], expected_var, rtol=1e-12)


def test_spatial_layer_with_momentum_none_and_the_default_preset_momentum():
    rng = np.random.default_rng(4)
    images = [rng.standard_normal((3, 2, 4, 4)) + k for k in range(4)]
    layer = BatchNorm2d(2, convention="pytorch", momentum=None, dtype=np.float64)
    for x in images:
        layer.forward(x)
    cnn = small_cnn(norm="batch", channels=(2, 3), bn_options={"convention": "pytorch", "momentum": None})
    assert cnn.layers[1].bn_param["momentum"] is None
    rows = [x.transpose(0, 2, 3, 1).reshape(-1, 2) for x in images]
    np.testing.assert_allclose(layer.bn_param["running_mean"], np.mean([r.mean(0) for r in rows], axis=0), rtol=1e-12)
    np.testing.assert_allclose(
        layer.bn_param["running_var"], np.mean([r.var(0, ddof=1) for r in rows], axis=0), rtol=1e-12
    )
    assert BatchNorm1d(3, convention="keras").bn_param["momentum"] == 0.99  # the preset's default when not given
    with pytest.raises(ValueError, match=r"None.*only with convention 'pytorch'"):
        BatchNorm1d(3, momentum=None)
    with pytest.raises(ValueError, match=r"None.*only with convention 'pytorch'"):
        mlp((4, 3, 2), norm="batch", bn_options={"momentum": None})


def test_conventions_table_lists_every_preset():
    rows = {r["convention"]: r for r in conventions_table()}
    assert set(rows) == set(DOCUMENTED)
    for name, doc in DOCUMENTED.items():
        assert rows[name]["weight on new batch"] == pytest.approx(doc["new"])
        assert rows[name]["eps"] == doc["eps"]
        assert rows[name]["initial running_var"] == doc["var0"]


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_pytorch_preset_matches_pytorch_itself(momentum):
    torch = pytest.importorskip("torch")
    data = batches(k=6, N=5, D=3)
    D = data[0].shape[1]
    gamma, beta = np.array([0.5, 1.5, -2.0]), np.array([0.1, -0.3, 2.0])
    p = {"mode": "train", "convention": "pytorch", "momentum": momentum}
    layer = torch.nn.BatchNorm1d(D, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gamma))
        layer.bias.copy_(torch.from_numpy(beta))
    for b in data:
        ours, _ = batchnorm_forward(b, gamma, beta, p)
        theirs = layer(torch.from_numpy(b)).detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p["running_mean"], layer.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(p["running_var"], layer.running_var.numpy(), rtol=1e-12)
    layer.eval()
    x = np.random.default_rng(3).standard_normal((4, D))
    ours, _ = batchnorm_forward(x, gamma, beta, dict(p, mode="test"))
    np.testing.assert_allclose(ours, layer(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_the_module_docstring_table_states_the_presets_data():
    import bnhelpers.conventions as module

    lines = module.__doc__.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    header, rows = lines[rules[0] + 1], lines[rules[1] + 1 : rules[2]]
    assert header.split()[:2] == ["preset", "momentum"]
    documented = {}
    for row in rows:
        name, meaning, default, eps, var0, stored = (cell.strip() for cell in row.split("  ") if cell.strip())
        documented[name] = (meaning, float(default), float(eps), float(var0), stored)
    assert set(documented) == set(bh.CONVENTIONS)
    for name, c in bh.CONVENTIONS.items():
        meaning, default, eps, var0, stored = documented[name]
        assert meaning == f"weight on the {'NEW' if c.momentum_is_new else 'OLD'} value", name
        assert (default, eps, var0) == (c.momentum, c.eps, c.running_var_init), name
        assert stored.startswith("unbiased" if c.unbiased else "biased"), name
        assert c.running_mean_init == 0.0  # "The running mean starts at 0 everywhere."
