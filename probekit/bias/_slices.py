"""Iterate over the independent slices of a results table (one per encoder/task/probe/metric/attribute)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from probekit.bias.errors import BiasInputError
from probekit.bias.speakers import require_columns

SLICE_KEYS = ["encoder", "task", "probe", "metric", "group_attribute"]


def iter_slices(df: pd.DataFrame, train_sets=None):
    """Yield ``(key dict, sub-frame)`` for each slice, optionally restricted to train sets."""
    require_columns(df, SLICE_KEYS + ["layer", "layer_index", "train_set", "test_group", "unit",
                                      "value", "n", "seed"])
    if train_sets is not None:
        df = df[df["train_set"].astype(str).isin(list(train_sets))]
    if df.empty:
        raise BiasInputError(f"no rows with train_set in {list(train_sets)}")
    # one slice copied at a time (iterating the groupby would first copy the whole table,
    # sorted); rows keep their order within a slice, slices come in sorted key order
    rows = df.groupby(SLICE_KEYS, sort=True).indices
    for key in sorted(rows):
        yield dict(zip(SLICE_KEYS, key)), df.take(rows[key])


def spearman(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman rank correlation along ``axis`` (ties get average ranks); NaN if constant."""
    ra, rb = rankdata(a, axis=axis), rankdata(b, axis=axis)
    ra = ra - ra.mean(axis, keepdims=True)
    rb = rb - rb.mean(axis, keepdims=True)
    den = np.sqrt((ra ** 2).sum(axis) * (rb ** 2).sum(axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(axis) / den, np.nan)
