"""Layerwise bias (after seed 002, "Where do self-supervised speech models become unfair?").

For the probes trained on every group, per slice (encoder, task, probe, metric, attribute) and
layer, from each test speaker's split-averaged error rate (:mod:`probekit.bias.design`):

* group errors, ``overall`` (mean over speakers), ``macro``, ``worst``, and the gaps:
  ``difference`` (max - min), ``ratio``, ``relative_gap``, ``std`` (descriptive: all are
  biased upwards by sampling noise, more so where the error is larger), and the debiased
  ``between_var`` (:func:`~probekit.bias.inference.between_group_variance`), which is 0 in
  expectation at parity at every error level;
* ``max_abs_t``: are the group means equal? The largest absolute studentized group-vs-rest
  difference (below) against its distribution under equal group means, ``p_fwer`` over the
  layers (max-T);
* per group: is it worse than the rest? One-sided Welch t, ``p_fwer`` over layers x groups
  (Westfall-Young max-T from the same null replicates);
* across layers: Spearman between the overall error and each bias measure, tested against
  the *joint* null (the same null replicate at every layer; the observed overall error is
  kept), so "the gap tracks the error" is said only when parity cannot produce the
  correlation; the layers of least error and largest gap with the share of bootstrap
  replicates that choose them.

Every test is run against two nulls of equal group means
(:func:`~probekit.bias.resample.null_replicates`) and reports the larger p-value: a permutation
of group labels across speakers (the same at every layer; exact when the groups' speakers are
exchangeable) and the centred speaker bootstrap (each probe's common offset out, every group
moved to the overall mean, speakers drawn within their own group with their whole layer
profile; keeps each group's own speaker variance). The permutation alone rejected 10.8 %
(trend) and 8.0 % (family-wise equal means) of true nulls at 5 % with one group at 6x the
speaker variance and 13 layers; the bootstrap alone is only approximate (it has few distinct
resamples of a small group). Welch's F under permutation rejected 7-8 % with 5 layers; the
max |t| held.

Intervals are a two-level bootstrap (splits, then speakers within groups), the same
replicate for every layer. Degenerate input (no errors, one layer, a group missing at a
layer) gives NaN with a ``reason``, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import gammaln

from probekit.bias._slices import iter_slices, spearman
from probekit.bias.design import group_moments, split_matrix
from probekit.bias.inference import maxt_adjust, permutation_pvalue, welch_vs_rest
from probekit.bias.metrics import group_statistics, statistic_name, statistics_of
from probekit.bias.resample import (clusters_behind, map_null_replicates,
                                    map_split_bootstrap, percentile_ci)

__all__ = ["LayerwiseBias", "layerwise_bias", "BIAS_MEASURES", "SUMMARY_STATISTICS",
           "WEIGHTING", "degenerate_cells"]

#: Bias measures related to the error across layers (``between_var`` is the debiased one).
BIAS_MEASURES = ("between_var", "difference", "relative_gap")
#: Each test speaker's split-averaged rate counts once (docs/concepts.md, "Weightings").
WEIGHTING = "speakers"
SUMMARY_STATISTICS = statistics_of(WEIGHTING)


def _statistics(r: np.ndarray, codes: np.ndarray, G: int) -> dict[str, np.ndarray]:
    return group_statistics(r, None, codes, G, weighting=WEIGHTING)


@dataclass(frozen=True)
class LayerwiseBias:
    """Result of :func:`layerwise_bias`.

    Attributes
    ----------
    curves : pandas.DataFrame
        One row per (slice, layer, statistic): ``estimate, ci_low, ci_high, p_value, p_fwer,
        n_speakers`` (distinct test speakers), ``n_per_split`` (test speakers per split),
        ``n_splits, reason``, and for the tested rows (``group:<g>``, ``max_abs_t``)
        ``degenerate`` (why the test says little: all errors in one group, a group at error
        0 or 1 while the others are not, no spread between speakers, or "cannot reach
        alpha"; empty otherwise) and ``p_min`` (the smallest p the permutation test can give
        with the speakers present: :func:`degenerate_cells`). Statistics: ``overall, macro,
        worst, difference, ratio, relative_gap, std, between_var, max_abs_t`` and
        ``group:<g>`` (p: one-sided "worse than the rest"), all with ``weighting`` =
        ``speakers`` (:func:`~probekit.bias.metrics.group_statistics`: each test speaker's
        split-averaged rate counts once).
    summary : pandas.DataFrame
        One row per (slice, bias measure): ``n_layers, min_error_layer, min_error_share,
        max_bias_layer, max_bias_share, min_bias_layer, spearman, null_mean, p_value``
        (joint null, two-sided), ``reason``, ``weighting``.
    """

    curves: pd.DataFrame
    summary: pd.DataFrame


def _reason(obs, L, G, n_spk_layer):
    """Why a layer's tests say nothing (empty string when they can)."""
    out = np.full(L, "", dtype=object)
    for li in range(L):
        if (n_spk_layer[li] < 2).any():
            out[li] = "a group has fewer than 2 test speakers at this layer"
        elif obs["overall"][li] == 0:
            out[li] = "no errors at this layer"
        elif np.nanmax(obs["by_group"][li]) == np.nanmin(obs["by_group"][li]) and \
                obs["between_var"][li] <= 0:
            out[li] = "every group has the same error"
    return out


def _log_arrangements(n: np.ndarray) -> np.ndarray:
    """log of the number of distinct label arrangements of speakers into groups of sizes
    ``n`` (..., G): the multinomial ``S! / prod n_g!`` over groups with speakers."""
    n = np.asarray(n, float)
    return gammaln(n.sum(-1) + 1) - gammaln(n + 1).sum(-1)


def degenerate_cells(r: np.ndarray, codes: np.ndarray, G: int, names, *, n_perm: int,
                     alpha: float) -> dict:
    """Name the cells whose permutation tests say little: ``{"group": (L, G) str,
    "layer": (L,) str, "p_min_group": (L, G), "p_min_layer": (L,)}``.

    ``p_min_*`` is the smallest p-value the test can give with the speakers present
    (``max(1 / #distinct arrangements, 1 / (P + 1))``: group vs rest has ``C(S, n_g)``
    arrangements, the equal-means test the multinomial); a cell is named when that is above
    ``alpha``, when one group holds every error (or is at error 0 or 1 while the others are
    not), or when no group has any spread between its speakers.
    """
    L = r.shape[0]
    m, v, n = group_moments(r, codes, G)                                     # (L, G)
    ok = ~np.isnan(r)
    S = ok.sum(-1)                                                           # (L,)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_c = gammaln(S[:, None] + 1) - gammaln(n + 1) - gammaln(S[:, None] - n + 1)
        p_grp = np.maximum(np.exp(-log_c), 1.0 / (n_perm + 1))
        p_lay = np.maximum(np.exp(-_log_arrangements(n)), 1.0 / (n_perm + 1))
    err = np.where(ok, r, 0.0) > 0
    grp_has = (err.astype(float) @ np.eye(G)[codes]) > 0                      # (L, G)
    flat = np.nan_to_num(v, nan=0.0) == 0
    g_txt = np.full((L, G), "", dtype=object)
    l_txt = np.full(L, "", dtype=object)
    for li in range(L):
        parts_l = []
        if grp_has[li].sum() == 1:
            parts_l.append(f"all errors in one group ({names[int(np.argmax(grp_has[li]))]})")
        if flat[li].all() and np.nanmax(m[li]) > np.nanmin(m[li]):
            parts_l.append("no spread between the speakers of any group")
        if p_lay[li] > alpha:
            parts_l.append(f"the permutation test cannot reach {alpha:g} with {int(S[li])} "
                           f"speakers (smallest p {p_lay[li]:.3g})")
        l_txt[li] = "; ".join(parts_l)
        for gi in range(G):
            if n[li, gi] == 0:
                continue
            parts = []
            others = np.delete(m[li], gi)
            if grp_has[li, gi] and grp_has[li].sum() == 1:
                parts.append("all errors in one group")
            if m[li, gi] in (0.0, 1.0) and not np.all(others == m[li, gi]):
                parts.append(f"group at error {m[li, gi]:g} while the others are not")
            if flat[li, gi] and np.all(np.nan_to_num(np.delete(v[li], gi)) == 0) and \
                    not np.all(others == m[li, gi]):
                parts.append("no spread between the speakers of any group")
            if p_grp[li, gi] > alpha:
                parts.append(f"the permutation test cannot reach {alpha:g} with "
                             f"{int(n[li, gi])} vs {int(S[li] - n[li, gi])} speakers "
                             f"(smallest p {p_grp[li, gi]:.3g})")
            g_txt[li, gi] = "; ".join(parts)
    return {"group": g_txt, "layer": l_txt, "p_min_group": p_grp, "p_min_layer": p_lay}


def layerwise_bias(df: pd.DataFrame, *, train_set: str = "all", n_boot: int = 1000,
                   n_perm: int = 1000, alpha: float = 0.05, seed: int = 0) -> LayerwiseBias:
    """Per-layer group metrics of the probes trained on ``train_set`` (default: every group).

    Parameters
    ----------
    df : pandas.DataFrame
        A results table (several encoders, tasks, probes and metrics are analysed apart).
    """
    curves, summaries = [], []
    for key, sub in iter_slices(df, [train_set]):
        rng = np.random.default_rng(seed)
        m = split_matrix(sub, rows=["layer_index", "layer"])
        G, L, K = len(m.group_names), len(m.keys), len(m.splits)
        r = m.speaker_rates()                                                  # (L, S)
        obs = _statistics(r, m.codes, G)
        # a block of replicates at a time (memory: not B x L x S at once)
        boot = map_split_bootstrap(m.rates, m.codes, n_boot, rng,
                                   lambda x: _statistics(x, m.codes, G))          # (B, L)
        t_obs = welch_vs_rest(r, m.codes, G)
        with np.errstate(invalid="ignore"):
            f_obs = np.nanmax(np.abs(t_obs), -1) if G else np.full(L, np.nan)
        nulls, ps = {}, {"f": [], "f_adj": [], "t": [], "t_adj": []}

        def null_stats(rp):                                                    # (P, l, S)
            return {**_statistics(rp, m.codes, G), "_t": welch_vs_rest(rp, m.codes, G)}

        for kind, st in map_null_replicates(m.rates, m.codes, n_perm, rng, null_stats).items():
            t_null = st.pop("_t")
            nulls[kind] = st
            with np.errstate(invalid="ignore"):
                f_null = np.nanmax(np.abs(t_null), -1)
            ps["f"].append(permutation_pvalue(f_obs, f_null))
            ps["f_adj"].append(maxt_adjust(f_obs, f_null))
            ps["t"].append(permutation_pvalue(t_obs, t_null))
            ps["t_adj"].append(maxt_adjust(t_obs, t_null))
        p_f, p_f_adj, p_t, p_t_adj = (np.maximum(*ps[k]) for k in ("f", "f_adj", "t", "t_adj"))
        n_layer = np.stack([m.n_speakers(li) for li in range(L)])              # (L, G)
        n_split = np.stack([m.per_split_n(li) for li in range(L)])             # (L, G)
        reason = _reason(obs, L, G, n_layer)
        counts = dict(zip(m.group_names, n_layer.min(0)))
        dg = degenerate_cells(r, m.codes, G, m.group_names, n_perm=n_perm, alpha=alpha)
        base = {**key, "train_set": train_set, **m.keys, "n_splits": K, "reason": reason,
                "degenerate": "", "p_min": np.nan}
        nan = np.full(L, np.nan)
        for s in SUMMARY_STATISTICS:
            lo, hi = percentile_ci(boot[s], alpha, axis=0, n_clusters=clusters_behind(s, counts))
            curves.append(pd.DataFrame({**base, "statistic": s, "estimate": obs[s], "ci_low": lo,
                                        "ci_high": hi, "p_value": nan, "p_fwer": nan,
                                        "n_speakers": n_layer.sum(1),
                                        "n_per_split": n_split.sum(1)}))
        curves.append(pd.DataFrame({**base, "statistic": "max_abs_t", "estimate": f_obs,
                                    "ci_low": nan, "ci_high": nan, "p_value": p_f,
                                    "p_fwer": p_f_adj, "n_speakers": n_layer.sum(1),
                                    "n_per_split": n_split.sum(1), "degenerate": dg["layer"],
                                    "p_min": dg["p_min_layer"]}))
        for gi, g in enumerate(m.group_names):
            lo, hi = percentile_ci(boot["by_group"][..., gi], alpha, axis=0,
                                   n_clusters=max(int(n_layer[:, gi].min()), 2))
            curves.append(pd.DataFrame({**base, "statistic": statistic_name("group", g),
                                        "estimate": obs["by_group"][:, gi], "ci_low": lo,
                                        "ci_high": hi, "p_value": p_t[:, gi],
                                        "p_fwer": p_t_adj[:, gi], "n_speakers": n_layer[:, gi],
                                        "n_per_split": n_split[:, gi],
                                        "degenerate": dg["group"][:, gi],
                                        "p_min": dg["p_min_group"][:, gi]}))
        summaries += _summary_rows(key, train_set, m.keys["layer"].to_numpy(), obs, boot, nulls,
                                   int(n_layer.sum(1).min()))
    curves, summary = pd.concat(curves, ignore_index=True), pd.DataFrame(summaries)
    curves.insert(curves.columns.get_loc("statistic") + 1, "weighting", WEIGHTING)
    if len(summary):
        summary.insert(summary.columns.get_loc("bias_measure") + 1, "weighting", WEIGHTING)
    return LayerwiseBias(curves=curves, summary=summary)


def _share(argbest: np.ndarray, layer_index: int) -> float:
    ok = argbest >= 0
    return float((argbest[ok] == layer_index).mean()) if ok.any() else np.nan


def _nanarg(x: np.ndarray, fn) -> np.ndarray:
    """Arg-min/max along the last axis, -1 where a row is all NaN."""
    allnan = np.isnan(x).all(-1)
    filled = np.where(np.isnan(x), np.inf if fn is np.argmin else -np.inf, x)
    return np.where(allnan, -1, fn(filled, axis=-1))


def _trend_p(ov, rho, null_b):
    """Two-sided joint-null p of the Spearman ``rho`` and the null's mean Spearman."""
    nr = spearman(np.broadcast_to(ov, null_b.shape), null_b, axis=-1)
    nr = nr[~np.isnan(nr)]
    if not nr.size:
        return np.nan, np.nan
    hi = permutation_pvalue(rho, nr[:, None])[0]
    lo = permutation_pvalue(-rho, -nr[:, None])[0]
    return float(min(1.0, 2 * min(hi, lo))), float(nr.mean())


def _summary_rows(key, train_set, layers, obs, boot, nulls, n_speakers) -> list[dict]:
    L = layers.size
    rows = []
    ov = obs["overall"]
    best_err = int(_nanarg(ov[None], np.argmin)[0])
    err_share = _share(_nanarg(boot["overall"], np.argmin), best_err) if best_err >= 0 else np.nan
    for b in BIAS_MEASURES:
        y = obs[b]
        reason = ""
        if L < 3:
            reason = "fewer than 3 layers: no correlation across layers"
        elif np.isnan(y).any() or np.isnan(ov).any():
            reason = "the measure is undefined at some layer"
        elif np.ptp(y) == 0 or np.ptp(ov) == 0:
            reason = "constant across layers"
        top = int(_nanarg(y[None], np.argmax)[0])
        low = int(_nanarg(y[None], np.argmin)[0])
        rho = null_mean = p = np.nan
        if not reason:
            rho = float(spearman(ov, y))
            # the observed error curve against each null replicate's gap curve, under both
            # nulls; the larger p (the parity mean from the exact permutation null)
            (p, null_mean), (p_b, _) = (_trend_p(ov, rho, nulls[k][b])
                                        for k in ("permutation", "bootstrap"))
            p = max(p, p_b)
        rows.append({**key, "train_set": train_set, "bias_measure": b, "n_layers": L,
                     "n_speakers": n_speakers,
                     "min_error_layer": layers[best_err] if best_err >= 0 else None,
                     "min_error_share": err_share,
                     "max_bias_layer": layers[top] if top >= 0 else None,
                     "max_bias_share": _share(_nanarg(boot[b], np.argmax), top) if top >= 0 else np.nan,
                     "min_bias_layer": layers[low] if low >= 0 else None,
                     "spearman": rho, "null_mean": null_mean, "p_value": p, "reason": reason})
    return rows
