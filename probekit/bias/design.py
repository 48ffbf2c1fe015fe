"""The repeated-split design of a results table, held as arrays: splits x speakers per row key.

A probe ``seed`` in the results table is one speaker(-and-sentence)-disjoint split: its probes
were trained on some speakers and tested on the others, and a speaker has rows for a split
only when it was a *test* speaker of that split. :class:`SplitMatrix` keeps that structure
instead of pooling it away:

* ``errors[r, k, s]`` and ``n[r, k, s]``: error count and items of speaker ``s`` in split
  ``k`` for row key ``r`` (a layer, or a layer and a training set); ``n == 0`` where the
  speaker was not tested in that split;
* :meth:`SplitMatrix.speaker_rates`: each speaker's error rate averaged over the splits in
  which it was tested, every split with equal weight: the per-speaker value every
  statistic of ``probekit.bias`` is computed from (the speaker is the unit);
* :meth:`SplitMatrix.split_group_counts`: test speakers per group *per split*, the ``n`` a
  reader should see (several splits test overlapping speakers, so the distinct speakers
  behind a statistic are more than any one probe was tested on).

Holes are allowed (a speaker or a whole group missing at one layer): they are NaN downstream,
with a reason, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from probekit.bias.speakers import speaker_rows

__all__ = ["SplitMatrix", "split_matrix", "group_moments", "speaker_mean_weights",
           "split_average"]


@dataclass(frozen=True)
class SplitMatrix:
    """Per-split, per-speaker error counts for ``R`` row keys.

    Attributes
    ----------
    keys : pandas.DataFrame
        ``R`` rows: the values of the row columns.
    speakers, groups : numpy.ndarray of str, shape (S,)
        Distinct test speakers (sorted by group, then id) and their groups.
    group_names : tuple of str (G,)
    codes : numpy.ndarray of int (S,)
    splits : tuple (K,)
        The ``seed`` values (one split each).
    errors, n : numpy.ndarray of float, shape (R, K, S)
        ``n == 0`` where the speaker was not tested in that split at that row.
    """

    keys: pd.DataFrame
    speakers: np.ndarray
    groups: np.ndarray
    group_names: tuple
    codes: np.ndarray
    splits: tuple
    errors: np.ndarray
    n: np.ndarray

    # computed once (read-only: the arrays are shared by every caller, so writing into them
    # is an error rather than a change seen by the next reader)
    @cached_property
    def tested(self) -> np.ndarray:
        """(R, K, S) bool: the speaker was a test speaker of that split at that row."""
        return _read_only(self.n > 0)

    @cached_property
    def rates(self) -> np.ndarray:
        """(R, K, S) error rates, NaN where not tested."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return _read_only(np.where(self.tested, self.errors / np.where(self.tested, self.n, 1),
                                       np.nan))

    @cached_property
    def _has_data(self) -> np.ndarray:
        """(R, S): the speaker has items at that row (in any split)."""
        return _read_only(self.n.sum(1) > 0)

    def speaker_rates(self) -> np.ndarray:
        """(R, S): each speaker's rate averaged over its test splits (equal weight per split);
        NaN for a speaker with no rows at that row key."""
        return split_average(self.rates)

    def split_group_counts(self, row: int = 0) -> np.ndarray:
        """(K, G) test speakers of each group in each split at row ``row``."""
        onehot = np.eye(len(self.group_names))[self.codes]
        return self.tested[row].astype(float) @ onehot

    def n_speakers(self, row: int | None = None) -> np.ndarray:
        """(G,) distinct speakers of each group with data (at ``row``, or at any row)."""
        has = self._has_data
        has = has.any(0) if row is None else has[row]
        return np.bincount(self.codes[has], minlength=len(self.group_names))

    def per_split_n(self, row: int = 0) -> np.ndarray:
        """(G,) median test speakers per split of each group (the n a probe was tested on)."""
        return np.median(self.split_group_counts(row), axis=0)


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def split_matrix(df: pd.DataFrame, rows: Sequence[str] = (), *, group_col: str = "test_group",
                 min_speakers: int = 2) -> SplitMatrix:
    """Arrange a results slice as (row key, split, speaker) arrays.

    Rows with ``unit == "all"`` are ignored. Several rows of one (row key, split, speaker)
    (e.g. two metrics) must not be mixed: select one metric first.

    Raises
    ------
    BiasInputError
        Missing columns, no per-speaker rows, a speaker in two groups (named).
    TooFewSpeakersError
        A group with fewer than ``min_speakers`` distinct test speakers overall (named).
    """
    rows = list(rows)
    d, sg, group_names = speaker_rows(df, rows + ["seed"], group_col, min_speakers)
    speakers = sg["_unit"].to_numpy()
    groups = sg["_group"].to_numpy()
    codes = np.searchsorted(np.array(group_names), groups)
    splits = tuple(sorted(d["seed"].unique().tolist()))
    if rows:
        keys = d[rows].drop_duplicates().sort_values(rows).reset_index(drop=True)
        r_of = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(d[rows]))
    else:
        keys = pd.DataFrame(index=range(1))
        r_of = np.zeros(len(d), dtype=int)
    k_of = np.searchsorted(np.array(splits), d["seed"].to_numpy())
    s_of = pd.Index(speakers).get_indexer(d["_unit"])
    R, K, S = len(keys), len(splits), len(speakers)
    E = np.zeros((R, K, S))
    N = np.zeros((R, K, S))
    np.add.at(E, (r_of, k_of, s_of), d["_k"].to_numpy(float))
    np.add.at(N, (r_of, k_of, s_of), d["n"].to_numpy(float))
    return SplitMatrix(keys=keys, speakers=speakers, groups=groups, group_names=group_names,
                       codes=codes, splits=splits, errors=E, n=N)


def group_moments(x: np.ndarray, codes: np.ndarray, G: int, *, means_only: bool = False):
    """NaN-aware per-group mean, unbiased variance and count of ``x`` (..., S) -> (..., G).

    NaN entries (speakers without data) do not count; a group with no data has NaN mean,
    one speaker gives NaN variance. ``means_only``: the variance is None (not computed).
    """
    onehot = np.eye(G)[codes]
    ok = ~np.isnan(x)
    x0 = np.where(ok, x, 0.0)
    cnt = ok.astype(float) @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        m = (x0 @ onehot) / cnt
        if means_only:
            return m, None, cnt
        ss = (x0 ** 2) @ onehot - cnt * m ** 2
        v = np.where(cnt > 1, np.maximum(ss, 0.0) / (cnt - 1), np.nan)
    return m, v, cnt


def speaker_mean_weights(tested: np.ndarray, codes: np.ndarray, G: int, statistic: str) -> np.ndarray:
    """Cell weights (..., K, S) that make a linear statistic of the speakers' split-averaged
    rates (:meth:`SplitMatrix.speaker_rates`) a weighted mean of the (split, speaker) cells.

    A speaker tested in ``c_s`` splits contributes ``1/c_s`` per split (its split average);
    ``statistic`` then weights the speakers: ``overall`` equally over every speaker with data,
    ``macro`` equally over the groups with data and equally over each group's speakers,
    ``group:<i>`` (the group's code ``i``) equally over that group's speakers. The weights sum
    to 1 wherever any speaker has data (0 elsewhere).
    """
    t = np.asarray(tested, bool)
    c = t.sum(-2, keepdims=True)                                      # (..., 1, S)
    has = c > 0
    onehot = np.eye(G)[codes]                                         # (S, G)
    n_g = has.astype(float) @ onehot                                  # (..., 1, G)
    with np.errstate(invalid="ignore", divide="ignore"):
        from probekit.bias.metrics import group_of

        per = np.where(t, 1.0 / np.maximum(c, 1), 0.0)                # split average of a speaker
        if statistic == "overall":
            w = per / np.maximum(has.sum(-1, keepdims=True), 1)
        elif statistic == "macro":
            G_has = (n_g > 0).sum(-1, keepdims=True)
            w = per / np.maximum(np.take(n_g, codes, axis=-1), 1) / np.maximum(G_has, 1)
        elif group_of(statistic) is not None:
            gi = int(group_of(statistic))
            w = np.where(codes == gi, per, 0.0) / np.maximum(n_g[..., gi:gi + 1], 1)
        else:
            raise ValueError(f"not a linear statistic of speaker rates: {statistic!r}")
    return w


def split_average(rates: np.ndarray) -> np.ndarray:
    """(..., K, S) rates (NaN = not tested) -> (..., S): each speaker's rate averaged over the
    splits that tested it, equal weight per split; NaN for a speaker never tested."""
    t = ~np.isnan(rates)
    num = np.where(t, rates, 0.0).sum(-2)
    cnt = t.sum(-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, num / np.maximum(cnt, 1), np.nan)
