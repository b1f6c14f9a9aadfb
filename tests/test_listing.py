import pytest

import bnhelpers as bh
from bnhelpers.analysis.listing import source_code


def test_the_docstring_shortens_to_its_first_line_and_the_code_stays():
    text = source_code(bh.batchnorm_forward, docstring=False)
    assert text.startswith("def batchnorm_forward(x, gamma, beta, bn_param):\n")
    assert '"""Batch normalization forward pass."""' in text
    assert "num_batches_tracked'" not in text.split('"""')[1]  # the docstring's reference material is gone
    assert "x_hat = xc / std" in text
    assert "out = gamma * x_hat + beta" in text


def test_solution_markers_are_dropped_and_docstrings_kept_by_default():
    text = source_code(bh.batchnorm_backward_fast)
    assert "BEGIN SOLUTION" not in text
    assert "END SOLUTION" not in text
    assert "dx_i   = gamma / (N * std)" in text  # the docstring's formula
    assert "dx = cache.gamma / (N * cache.std)" in text


def test_a_function_without_docstring_and_bad_input():
    def plain(a):
        return a + 1

    assert source_code(plain, docstring=False) == "def plain(a):\n    return a + 1\n"
    with pytest.raises(TypeError, match="function must be a function"):
        source_code("batchnorm_forward")
