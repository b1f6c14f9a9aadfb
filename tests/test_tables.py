"""bnhelpers.analysis.tables: results over seeds printed as one 'mean ± sd' column per measure (notebook 07)."""

import numpy as np
import pandas as pd
import pytest

from bnhelpers.analysis.tables import mean_sd


def runs():
    return pd.DataFrame({"arm": ["a", "a", "b", "b"], "accuracy": [0.9, 0.92, 0.8, 0.84], "loss": [0.3, 0.1, 0.5, 0.7]})


def test_each_measure_becomes_one_mean_plus_minus_sd_column():
    table = runs().groupby("arm")[["accuracy", "loss"]].agg(["mean", "std"])
    lines = mean_sd(table).splitlines()
    assert lines[0].split() == ["accuracy", "loss"]
    assert lines[-2].split() == ["a", "0.910", "±", "0.014", "0.200", "±", "0.141"]
    assert lines[-1].split() == ["b", "0.820", "±", "0.028", "0.600", "±", "0.141"]
    assert mean_sd(table, digits=1).splitlines()[-1].split() == ["b", "0.8", "±", "0.0", "0.6", "±", "0.1"]


def test_a_missing_mean_prints_empty_and_bad_tables_are_refused():
    table = runs().groupby("arm")[["accuracy"]].agg(["mean", "std"])
    table.loc["b", ("accuracy", "mean")] = np.nan
    assert mean_sd(table).splitlines()[-1].split() == ["b"]
    with pytest.raises(ValueError, match="'std'"):
        mean_sd(runs().groupby("arm")[["accuracy"]].agg(["mean", "min"]))
    with pytest.raises(ValueError, match="table must be a DataFrame"):
        mean_sd(runs())
    with pytest.raises(ValueError, match="digits"):
        mean_sd(table, digits=-1)
