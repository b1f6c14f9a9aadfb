"""Results over seeds as text: one 'mean ± sd' column per measure.

A pandas ``groupby(...).agg(["mean", "std"])`` table has two columns per
measure; printed, it is twice as wide as it needs to be and wraps in a
notebook. ``mean_sd`` folds each pair into one column of text.
"""

from __future__ import annotations

import pandas as pd

from .._checks import check_count


def mean_sd(table, digits=3):
    """The table as text, each measure's (mean, std) pair as one 'mean ± sd' column, never wrapped.

    table:  a DataFrame whose columns are (measure, "mean") and (measure, "std") pairs,
            as ``groupby(...).agg(["mean", "std"])`` makes; rows whose mean is NaN print empty.
    digits: decimal places of both numbers.
    """
    check_count("digits", digits, minimum=0)
    if not isinstance(table, pd.DataFrame) or table.columns.nlevels != 2:
        raise ValueError(
            f"table must be a DataFrame with (measure, 'mean') and (measure, 'std') columns, got {type(table).__name__}"
        )
    measures = list(dict.fromkeys(table.columns.get_level_values(0)))
    missing = [m for m in measures if not {"mean", "std"} <= set(table[m].columns)]
    if missing:
        raise ValueError(f"table must have a 'mean' and a 'std' column for every measure; missing for {missing}")
    text = {
        m: [
            f"{mean:.{digits}f} ± {sd:.{digits}f}" if mean == mean else ""  # mean != mean: NaN
            for mean, sd in table[m][["mean", "std"]].to_numpy()
        ]
        for m in measures
    }
    return pd.DataFrame(text, index=table.index).to_string()
