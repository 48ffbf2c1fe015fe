"""Test statistics and multiplicity control shared by every table of ``probekit.bias``.

* :func:`welch_vs_rest`: studentized group-minus-rest difference of speaker means (tests
  equal *means*, valid under unequal speaker variance: Janssen 1997; Chung & Romano 2013);
* :func:`between_group_variance`: the variance of group means net of its sampling variance,
  debiased (``between_var``; not a "gap", which means max - min), 0 in expectation at
  parity whatever the error level;
* :func:`maxt_adjust`: Westfall & Young (1993) single-step max-T adjusted p-values from
  permutations shared by every cell (family-wise error control under any dependence
  between the cells that the shared permutations reproduce); :func:`maxt_stepdown`, its
  step-down form over one family (the paired before/after changes);
* :func:`twoway_cluster_t`: a mean over repeated splits with a speaker x split two-way
  cluster-robust standard error, for comparisons of two *trained probes*, where which
  speakers trained them is a source of variance that a test over test speakers alone
  ignores;
* :func:`holm`: statsmodels' Holm step-down with NaNs left out.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import t as student_t

from probekit.bias.design import group_moments

__all__ = ["welch_vs_rest", "between_group_variance", "maxt_adjust", "maxt_stepdown",
           "holm", "within_group_permutation_indices",
           "permutation_pvalue", "twoway_cluster_t", "twoway_from_scores"]


def permutation_pvalue(observed, null) -> np.ndarray:
    """One-sided ``(1 + #{null >= observed}) / (1 + P)`` (Phipson & Smyth 2010); ``null`` has
    the P permutations on axis 0. NaN observed -> NaN; NaN null values count as not >=."""
    observed = np.asarray(observed, float)
    null = np.asarray(null, float)
    ge = (np.nan_to_num(null, nan=-np.inf) >=
          observed - 1e-12 * np.maximum(1.0, np.abs(np.nan_to_num(observed)))).sum(axis=0)
    p = (1.0 + ge) / (1.0 + null.shape[0])
    return np.where(np.isnan(observed), np.nan, p)


def welch_vs_rest(x: np.ndarray, codes: np.ndarray, G: int) -> np.ndarray:
    """``(m_g - m_rest) / sqrt(v_g/n_g + v_rest/n_rest)`` for every group: (..., S) -> (..., G).

    NaN speakers are left out; a group (or its rest) with fewer than 2 speakers gives NaN; a
    zero standard error gives 0 when the means are equal (no difference can be seen) and
    ``+-inf`` when they differ (every speaker of the group on one side of every other
    speaker with no spread: e.g. a group at error 1.0 against 0.0 elsewhere, which a 0
    would have read as "no difference").
    """
    m, v, n = group_moments(x, codes, G)
    ok = ~np.isnan(x)
    x0 = np.where(ok, x, 0.0)
    tot, tot2, S = x0.sum(-1, keepdims=True), (x0 ** 2).sum(-1, keepdims=True), ok.sum(-1, keepdims=True)
    nr = S - n
    with np.errstate(invalid="ignore", divide="ignore"):
        mr = (tot - np.nan_to_num(m) * n) / nr
        ssg = np.nan_to_num(v) * np.maximum(n - 1, 0)
        ss_r = tot2 - (ssg + n * np.nan_to_num(m) ** 2) - nr * mr ** 2
        vr = np.where(nr > 1, np.maximum(ss_r, 0.0) / (nr - 1), np.nan)
        se = np.sqrt(v / n + vr / nr)
        diff = m - mr
        t = np.where(se > 0, diff / se, np.where(np.isnan(se), np.nan,
                                                 np.where(diff == 0, 0.0, np.sign(diff) * np.inf)))
    return np.where((n >= 2) & (nr >= 2), t, np.nan)


def between_group_variance(x: np.ndarray, codes: np.ndarray, G: int) -> np.ndarray:
    """``var_g(m_g) - mean_g(v_g / n_g)``: between-group variance of the (equal-weight) group
    means net of the sampling variance of those means; unbiased for the variance of the
    true group means when speakers are independent. Negative values are allowed (they mean
    "no more spread than sampling produces"); (..., S) -> (...)."""
    m, v, n = group_moments(x, codes, G)
    ok = (n >= 2) & ~np.isnan(m)
    k = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mm = np.where(ok, m, 0.0).sum(-1) / k
        between = np.where(ok, (m - mm[..., None]) ** 2, 0.0).sum(-1) / (k - 1)
        noise = np.where(ok, v / n, 0.0).sum(-1) / k
    return np.where(k >= 2, between - noise, np.nan)


def maxt_adjust(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Westfall-Young single-step max-T adjusted p-values over every cell of ``observed``.

    ``observed`` (...) and ``null`` (P, ...) with larger = more extreme; the family is every
    non-NaN cell. ``p_adj = (1 + #{b : max_cells null_b >= obs}) / (1 + P)``.
    """
    observed = np.asarray(observed, float)
    null = np.asarray(null, float).reshape(null.shape[0], -1)
    mx = np.nanmax(np.where(np.isnan(observed).reshape(1, -1), np.nan, null), axis=1) \
        if np.any(~np.isnan(observed)) else np.full(null.shape[0], np.nan)
    mx = np.nan_to_num(mx, nan=-np.inf)
    tol = 1e-12 * np.maximum(1.0, np.abs(np.nan_to_num(observed)))
    ge = (mx[:, None] >= (observed - tol).reshape(1, -1)).sum(0)
    p = ((1.0 + ge) / (1.0 + null.shape[0])).reshape(observed.shape)
    return np.where(np.isnan(observed), np.nan, p)


def maxt_stepdown(observed: np.ndarray, null: np.ndarray, *, exact: bool = False) -> np.ndarray:
    """Westfall-Young step-down max-T adjusted p-values over the last axis.

    ``observed`` (L,) standardized statistics (larger = more extreme), ``null`` (P, L) the
    same under shared permutations; NaN entries take no part. Each hypothesis is compared
    with the maxima over the hypotheses not yet rejected (the successive maxima), so it is
    never less powerful than :func:`maxt_adjust`. ``exact``: ``null`` enumerates every
    permutation (``p = #{>=} / P``), else ``(1 + #{>=}) / (1 + P)``.
    """
    T = np.asarray(observed, float)
    null = np.asarray(null, float)
    out = np.full(T.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(T))
    if not ok.size:
        return out
    order = ok[np.argsort(-T[ok])]
    nul = np.where(np.isfinite(null[:, order]), null[:, order], -np.inf)
    # successive maxima over the hypotheses still in the family (reverse cumulative max)
    q = np.maximum.accumulate(nul[:, ::-1], axis=1)[:, ::-1]
    tol = 1e-12 * np.maximum(1.0, np.abs(T[order]))
    ge = (q >= T[order] - tol).sum(0)
    p = ge / null.shape[0] if exact else (1.0 + ge) / (1.0 + null.shape[0])
    out[order] = np.minimum(np.maximum.accumulate(p), 1.0)
    return out


def holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values over every non-NaN entry of ``p`` (any shape).

    ``p_(i) -> max_{j <= i} min(1, (m - j + 1) p_(j))`` over the ``m`` sorted p-values; the same
    values as statsmodels' ``multipletests(method="holm")``, without its per-call
    ``gc.collect`` (half a second per call on a busy machine).
    """
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        x = p[ok]
        order = np.argsort(x, kind="stable")
        m = x.size
        adj = np.minimum(np.maximum.accumulate((m - np.arange(m)) * x[order]), 1.0)
        res = np.empty(m)
        res[order] = adj
        out[ok] = res
    return out


def within_group_permutation_indices(codes: np.ndarray, n_perm: int,
                                     rng: np.random.Generator) -> np.ndarray:
    """(P, S) permutations that move each speaker only among its own group's positions."""
    codes = np.asarray(codes)
    idx = np.broadcast_to(np.arange(codes.size), (n_perm, codes.size)).copy()
    for g in np.unique(codes):
        pos = np.flatnonzero(codes == g)
        idx[:, pos] = pos[rng.permuted(np.broadcast_to(np.arange(pos.size), (n_perm, pos.size)),
                                       axis=1)]
    return idx


def twoway_cluster_t(d: np.ndarray, alpha: float = 0.05):
    """Mean of ``d`` (..., K, S) over its non-NaN (split, speaker) cells, equal weight per
    split, with a two-way (split and speaker) cluster-robust standard error
    (:func:`twoway_from_scores`, with the weighted residuals ``w * (d - mean)`` as scores).

    Returns
    -------
    dict of arrays (...): ``mean, se, t, df, p_less, p_two, ci_low, ci_high, k`` (splits
    used), ``n`` (speakers used).
    """
    d = np.asarray(d, float)
    ok = ~np.isnan(d)
    n_k = ok.sum(-1)                                             # (..., K)
    K = (n_k > 0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(ok, 1.0 / (np.maximum(n_k, 1)[..., None] * np.maximum(K, 1)[..., None, None]), 0.0)
        mean = (w * np.where(ok, d, 0.0)).sum((-2, -1))
        c = np.where(ok, w * (d - mean[..., None, None]), 0.0)
    return twoway_from_scores(mean, c, ok, alpha)


def twoway_from_scores(estimate: np.ndarray, c: np.ndarray, ok: np.ndarray,
                       alpha: float = 0.05) -> dict:
    """Two-way (split x speaker) cluster-robust t for an estimate that is, to first order, a
    sum over (split, speaker) cells of the scores ``c`` (..., K, S): its weighted, centred
    residuals (zero where ``ok`` is False). :func:`twoway_cluster_t` (a weighted mean) and
    the before/after changes of :func:`probekit.bias.compare.split_change` (group means and
    the gap statistics, by the delta method) share it.

    (For a mean over splits, each split's mean over its speakers weighted ``1/K``, ``c`` are
    the weighted residuals.) From their sums by split, by speaker and by cell (each with a ``C/(C-1)`` factor for ``C``
    clusters), the variance is

        V = V_split + max(V_speaker - V_cell, 0)

    the split-cluster variance (which carries each split's training draw) plus the part of the
    speaker-cluster variance that is more than cell noise (a speaker's persistent difference
    across the splits that tested it), truncated at zero as a variance component is. This is
    Cameron, Gelbach & Miller's (2011) two-way estimator with its speaker term's positive part
    (ours: the untruncated form rejected 8-9 % of true nulls at 5 % with 10 splits and 10
    speakers, its extra noise making the t heavier-tailed). The t reference has
    ``min(#speakers, #splits) - 1`` degrees of freedom (at least 1). Cells of ``ok`` count
    as clusters; a split or speaker with no ``ok`` cell does not.

    Returns
    -------
    dict of arrays (...): ``mean`` (the estimate), ``se, t, df, p_less, p_two, ci_low,
    ci_high, k`` (splits used), ``n`` (speakers used).
    """
    mean = np.asarray(estimate, float)
    c = np.where(ok, np.asarray(c, float), 0.0)
    K = ok.any(-1).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_s = ok.any(-2).sum(-1)
        fs = np.where(n_s > 1, n_s / np.maximum(n_s - 1, 1), 1.0)
        fk = np.where(K > 1, K / np.maximum(K - 1, 1), 1.0)
        v_s = fs * (c.sum(-2) ** 2).sum(-1)
        v_k = fk * (c.sum(-1) ** 2).sum(-1)
        v_c = np.minimum(fs, fk) * (c ** 2).sum((-2, -1))
        v = v_k + np.maximum(v_s - v_c, 0.0)
        se = np.sqrt(v)
        t = np.where(se > 0, mean / se, np.where(mean == 0, 0.0, np.sign(mean) * np.inf))
    df = np.maximum(np.minimum(n_s, K) - 1, 1).astype(float)
    valid = (K >= 2) & (n_s >= 2) & ~np.isnan(mean)
    t = np.where(valid, t, np.nan)
    q = student_t.ppf(1 - alpha / 2, df)
    return {"mean": np.where(K >= 1, mean, np.nan), "se": np.where(valid, se, np.nan), "t": t,
            "df": np.where(valid, df, np.nan),
            "p_less": np.where(valid, student_t.cdf(t, df), np.nan),
            "p_two": np.where(valid, np.minimum(2 * student_t.sf(np.abs(t), df), 1.0), np.nan),
            "ci_low": np.where(valid, mean - q * se, np.nan),
            "ci_high": np.where(valid, mean + q * se, np.nan), "k": K, "n": n_s}
