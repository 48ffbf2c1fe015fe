"""Pool a results table into per-speaker error counts: the unit every statistic resamples.

Speakers, not rows, are the independent units: one speaker's items share a voice, so rows of
one speaker are correlated and resampling rows understates uncertainty (see docs/concepts.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np
import pandas as pd

from probekit.bias.errors import BiasInputError, TooFewSpeakersError

__all__ = ["SpeakerMatrix", "speaker_matrix", "require_columns", "speaker_rows"]


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str = "results table") -> None:
    """Raise :class:`BiasInputError` naming every missing column."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise BiasInputError(f"{what} lacks column(s) {missing}")


@dataclass(frozen=True)
class SpeakerMatrix:
    """Per-speaker error counts for ``R`` row keys (e.g. layers) and ``S`` speakers.

    Attributes
    ----------
    keys : pandas.DataFrame
        ``R`` rows, the values of the row columns (empty columns when no row columns).
    speakers, groups : numpy.ndarray of str, shape (S,)
        Speaker ids and the group of each speaker (sorted by group, then speaker).
    group_names : tuple of str, length G
    codes : numpy.ndarray of int, shape (S,)
        Index of each speaker's group in ``group_names``.
    errors, n : numpy.ndarray of float, shape (R, S)
        Error counts ``sum(value * n)`` and item counts ``sum(n)``, pooled over seeds.
    """

    keys: pd.DataFrame
    speakers: np.ndarray
    groups: np.ndarray
    group_names: tuple
    codes: np.ndarray
    errors: np.ndarray
    n: np.ndarray

    @property
    def n_speakers(self) -> pd.Series:
        return pd.Series(np.bincount(self.codes, minlength=len(self.group_names)),
                         index=pd.Index(self.group_names, name="group"), name="n_speakers")

    @property
    def rates(self) -> np.ndarray:
        """Per-speaker error rates, shape (R, S)."""
        return self.errors / self.n


def speaker_rows(df: pd.DataFrame, columns: Sequence[str], group_col: str, min_speakers: int):
    """The per-speaker rows of a results slice, checked: ``(rows, speaker -> group frame
    sorted by group then speaker, group names)``. Rows get ``_k`` (error count), ``_unit``
    and ``_group``.

    Raises
    ------
    BiasInputError
        Missing columns, no per-speaker rows, a speaker in two groups (named).
    TooFewSpeakersError
        A group with fewer than ``min_speakers`` speakers (named).
    """
    require_columns(df, list(columns) + [group_col, "unit", "value", "n"])
    d = df[df["unit"].astype(str) != "all"]
    if d.empty:
        raise BiasInputError("no per-speaker rows (every row has unit == 'all'); speaker-level "
                             "statistics need the grid to keep per-speaker errors")
    d = d.assign(_k=d["value"].to_numpy(float) * d["n"].to_numpy(float),
                 _unit=d["unit"].astype(str), _group=d[group_col].astype(str))
    two = d.groupby("_unit")["_group"].nunique()
    if (two > 1).any():
        spk = two.index[two > 1][0]
        raise BiasInputError(f"speaker {spk!r} appears in several groups "
                             f"{sorted(d.loc[d['_unit'] == spk, '_group'].unique())}")
    sg = d.groupby("_unit")["_group"].first().reset_index().sort_values(["_group", "_unit"])
    group_names = tuple(sorted(sg["_group"].unique()))
    counts = sg["_group"].value_counts()
    few = [g for g in group_names if counts[g] < min_speakers]
    if few:
        raise TooFewSpeakersError(f"group {few[0]!r} has {counts[few[0]]} test speaker(s); "
                                  f"speaker-level statistics need at least {min_speakers}")
    return d, sg, group_names


def speaker_matrix(df: pd.DataFrame, rows: Sequence[str] = (), *, group_col: str = "test_group",
                   min_speakers: int = 2) -> SpeakerMatrix:
    """Per-speaker error counts of a results slice, one matrix row per value of ``rows``.

    Rows with ``unit == "all"`` are ignored (they carry no speaker information); seeds and any
    column not in ``rows`` are pooled by summing error counts and item counts.

    Raises
    ------
    BiasInputError
        Missing columns, no per-speaker rows, a speaker in two groups, or a speaker missing
        from one of the row keys (named).
    TooFewSpeakersError
        A group with fewer than ``min_speakers`` speakers (named).
    """
    rows = list(rows)
    d, spk_group, group_names = speaker_rows(df, rows, group_col, min_speakers)
    speakers = spk_group["_unit"].to_numpy()
    groups = spk_group["_group"].to_numpy()
    codes = np.searchsorted(np.array(group_names), groups)
    if rows:
        agg = d.groupby(rows + ["_unit"], sort=True)[["_k", "n"]].sum()
        k = agg["_k"].unstack("_unit").reindex(columns=speakers)
        n = agg["n"].unstack("_unit").reindex(columns=speakers).astype(float)
        hole = n.isna() | (n <= 0)
        if hole.to_numpy().any():
            r, c = np.argwhere(hole.to_numpy())[0]
            raise BiasInputError(f"speaker {speakers[c]!r} has no rows for "
                                 f"{dict(zip(rows, np.atleast_1d(k.index[r])))}")
        keys = k.index.to_frame(index=False)
        K, N = k.to_numpy(float), n.to_numpy(float)
    else:
        agg = d.groupby("_unit")[["_k", "n"]].sum().reindex(speakers)
        keys = pd.DataFrame(index=range(1))
        K, N = agg["_k"].to_numpy(float)[None], agg["n"].to_numpy(float)[None]
    return SpeakerMatrix(keys=keys, speakers=speakers, groups=groups, group_names=group_names,
                         codes=codes, errors=K, n=N)
