"""The change of every group statistic between two encoders probed on the same test
speakers and splits, with the probes' training draw counted: the engine of
:func:`probekit.bias.compare.compare_encoders` (docs/concepts.md, "Before/after
comparisons").

Each statistic is a function of the group means (``overall``: of the speakers); a group mean
is a weighted sum of the (split, speaker) cells
(:func:`~probekit.bias.design.speaker_mean_weights`). The change's cell scores go to the
two-way (split x speaker) variance of :func:`~probekit.bias.inference.twoway_from_scores`,
the engine of the own-vs-broad test: exact for ``group:<g>``, ``overall`` and ``macro``, the
delta method for the gaps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from probekit.bias.design import speaker_mean_weights, split_average
from probekit.bias.errors import BiasInputError
from probekit.bias.inference import holm, twoway_from_scores
from probekit.bias.metrics import (SUMMARY_STATISTICS, group_of, group_statistics,
                                   statistic_name)

__all__ = ["split_change", "COMPARE_STATISTICS", "LINEAR_STATISTICS", "ONE_SPLIT", "WEIGHTING"]

#: Statistics compared (besides ``group:<g>``): summaries, then gaps (larger = more unequal,
#: except ``ratio``, min / max, where 1 is parity).
COMPARE_STATISTICS = SUMMARY_STATISTICS
#: The group means weigh each test speaker's split-averaged rate once, as the layer curves do.
WEIGHTING = "speakers"
#: Statistics that are weighted means of the cells (besides ``group:<g>``); the others are
#: nonlinear in the group means (delta method).
LINEAR_STATISTICS = ("overall", "macro")

ONE_SPLIT = ("one probe split: the training draw cannot be assessed, so no p-value or "
             "interval (run the probes with >= 2 seeds)")




def _notes(stat, b, a, se, change, K, overall_b, overall_a):
    """Why a row's test says little (one string per row; empty when nothing is degenerate)."""
    out = np.full(b.shape, "", dtype=object)
    for r in range(b.size):
        if K[r] < 2:
            out[r] = ONE_SPLIT
            continue
        if group_of(stat) is not None:
            for v, when, ov in ((b[r], "before", overall_b[r]), (a[r], "after", overall_a[r])):
                if v in (0.0, 1.0) and 0.0 < ov < 1.0:
                    out[r] = (f"group at error {v:g} {when} while the others are not (all its "
                              "speakers at one bound: a change is bounded on one side)")
                    break
        if not out[r] and se[r] == 0:
            out[r] = ("no variance: the two encoders agree in every cell" if change[r] == 0 else
                      "no variance: every cell changed by the same amount")
    return out


def _gradient(stat: str, st: dict, names: Sequence[str]) -> np.ndarray:
    """d statistic / d group mean (R, G) at the observed group means (delta method); NaN-free
    (a group without data, or a statistic undefined at this row, gets 0)."""
    m = st["by_group"]                                                       # (R, G)
    R, G = m.shape
    has = ~np.isnan(m)
    grad = np.zeros((R, G))
    mx, mn, macro = st["worst"], np.where(has.any(1), np.nanmin(np.where(has, m, np.inf), 1), np.nan), \
        st["macro"]
    hi = np.argmax(np.where(has, m, -np.inf), 1)
    lo = np.argmin(np.where(has, m, np.inf), 1)
    e_hi, e_lo = np.eye(G)[hi], np.eye(G)[lo]
    e_mac = has / np.maximum(has.sum(1, keepdims=True), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if stat == "macro":
            grad = e_mac
        elif group_of(stat) is not None:
            grad = np.broadcast_to(np.eye(G)[list(names).index(group_of(stat))], (R, G)).copy()
        elif stat == "worst":
            grad = e_hi
        elif stat == "difference":
            grad = e_hi - e_lo
        elif stat == "ratio":
            grad = (e_lo * mx[:, None] - mn[:, None] * e_hi) / mx[:, None] ** 2
        elif stat == "relative_gap":
            grad = ((e_hi - e_lo) * macro[:, None] - (mx - mn)[:, None] * e_mac) / macro[:, None] ** 2
        elif stat == "std":
            sd = st["std"][:, None]
            grad = np.where(has, (m - macro[:, None]) / (has.sum(1, keepdims=True) * sd), 0.0)
    return np.where(np.isfinite(grad), grad, 0.0)


def split_change(before: np.ndarray, after: np.ndarray, codes, group_names: Sequence[str], *,
                 rows: Sequence | None = None, statistics: Sequence[str] | None = None,
                 alpha: float = 0.05) -> pd.DataFrame:
    """Change (after - before) of every statistic per row, on the split design.

    Each statistic is a function of the group means (``overall``: of the speakers), and a
    group mean is a weighted sum of the (split, speaker) cells
    (:func:`~probekit.bias.design.speaker_mean_weights`). The change's scores are
    ``w_after * e_after - w_before * e_before`` per cell, with ``e`` the cell's residual from
    its group's mean and ``w`` the statistic's cell weights (its gradient in the group means
    times their weights: the delta method, exact for the linear statistics), and its
    variance is the two-way (split x speaker) one of
    :func:`~probekit.bias.inference.twoway_from_scores`, the engine of the own-vs-broad test.

    Parameters
    ----------
    before, after : array (R, K, S)
        Error rates of the two encoders per row (layer), split and test speaker, NaN where
        the speaker was not tested in that split; the NaN patterns must agree (paired by
        split and speaker).
    codes : array of int (S,)
        Group index of each speaker into ``group_names``.
    statistics : subset of :data:`COMPARE_STATISTICS` and ``"group"`` (every ``group:<g>``).

    Returns
    -------
    DataFrame, one row per (row, statistic): ``weighting`` (``speakers``: the group means
    of :func:`~probekit.bias.metrics.group_statistics`), ``before, after, change, se, df, t, ci_low,
    ci_high, p_value`` (two-sided), ``p_fwer`` (Holm over the rows), ``ci_low_fwer,
    ci_high_fwer`` (simultaneous over the rows, Bonferroni), ``n_speakers, n_splits,
    method, note``.
    """
    A, B = np.asarray(before, float), np.asarray(after, float)
    if A.ndim != 3 or A.shape != B.shape:
        raise BiasInputError(f"before/after must be (rows, splits, speakers) of one shape: "
                             f"{A.shape}, {B.shape}")
    if (np.isnan(A) != np.isnan(B)).any():
        raise BiasInputError(f"{int((np.isnan(A) != np.isnan(B)).sum())} (row, split, speaker) "
                             "cells were tested for one encoder only: a paired comparison "
                             "needs the same test split for both")
    codes = np.asarray(codes, int)
    names = list(group_names)
    R, K, S = A.shape
    G = len(names)
    rows = list(range(R)) if rows is None else list(rows)
    want = lambda k: statistics is None or k in statistics or (  # noqa: E731
        group_of(k) is not None and "group" in statistics)
    stats = [s for s in COMPARE_STATISTICS if want(s)] + \
        [statistic_name("group", g) for g in names if want(statistic_name("group", g))]
    tested = ~np.isnan(A)
    Wg = np.stack([speaker_mean_weights(tested, codes, G, f"group:{g}") for g in range(G)], -1)
    w_all = speaker_mean_weights(tested, codes, G, "overall")                  # (R, K, S)
    enc = []
    for X in (A, B):
        st = group_statistics(split_average(X), None, codes, G, weighting=WEIGHTING)
        resid = np.where(tested, X - np.take(np.nan_to_num(st["by_group"]), codes, -1)[:, None], 0.0)
        res_all = np.where(tested, X - st["overall"][:, None, None], 0.0)
        enc.append((st, resid, res_all))
    (sb, eb, ob), (sa, ea, oa) = enc
    out = []
    for s in stats:
        if s == "overall":
            c = w_all * (oa - ob)
        else:
            wb = (Wg * _gradient(s, sb, names)[:, None, None, :]).sum(-1)     # (R, K, S)
            wa = (Wg * _gradient(s, sa, names)[:, None, None, :]).sum(-1)
            c = wa * ea - wb * eb
        g = group_of(s)
        vb, va = (x["by_group"][:, names.index(g)] if g is not None else x[s] for x in (sb, sa))
        ct = twoway_from_scores(va - vb, c, tested, alpha)
        est, se, df = ct["mean"], ct["se"], ct["df"]
        n_tests = max(int(np.isfinite(ct["p_two"]).sum()), 1)
        qf = student_t.ppf(1 - alpha / (2 * n_tests), df)
        gi = names.index(g) if g is not None else None
        has_spk = tested.any(1) & ((codes == gi) if gi is not None else True)
        out.append(pd.DataFrame({
            "row": rows, "statistic": s, "weighting": WEIGHTING, "before": vb, "after": va, "change": est, "se": se,
            "df": df, "t": ct["t"], "ci_low": ct["ci_low"], "ci_high": ct["ci_high"],
            "p_value": ct["p_two"], "p_fwer": holm(ct["p_two"]),
            "ci_low_fwer": est - qf * se, "ci_high_fwer": est + qf * se,
            "n_speakers": has_spk.sum(1), "n_splits": ct["k"],
            "method": "two-way t (split x speaker)" + ("" if s in LINEAR_STATISTICS or gi is not None
                                                       else ", delta method"),
            "note": _notes(s, vb, va, se, est, ct["k"], sb["overall"], sa["overall"])}))
    return pd.concat(out, ignore_index=True)
