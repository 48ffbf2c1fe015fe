"""Layerwise bias (after seed 002, "Where do self-supervised speech models become unfair?").

For every layer: overall error and every bias measure with speaker-bootstrap CIs and
speaker-permutation p-values; then per encoder and task, the layer of minimum error, the
layers of minimum and maximum bias, and the Spearman correlation between error and bias
across layers with a CI from the *same* speaker resample applied to every layer (the layers
share speakers, so resampling them jointly keeps their dependence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from probekit.bias._slices import iter_slices, spearman
from probekit.bias.metrics import GAP_STATISTICS, SUMMARY_STATISTICS, gap_statistics
from probekit.bias.permutation import group_vs_rest, permutation_pvalue
from probekit.bias.resample import (clusters_behind, percentile_ci,
                                    speaker_bootstrap_indices, speaker_permutation_indices)
from probekit.bias.speakers import speaker_matrix

__all__ = ["LayerwiseBias", "layerwise_bias", "BIAS_MEASURES"]

#: Bias measures summarised across layers (larger = more unequal).
BIAS_MEASURES = ("difference", "relative_gap", "std")


@dataclass(frozen=True)
class LayerwiseBias:
    """Result of :func:`layerwise_bias`.

    Attributes
    ----------
    curves : pandas.DataFrame
        One row per (slice, layer, statistic): ``estimate, ci_low, ci_high, p_value,
        n_speakers``; statistics are ``overall, macro, worst, difference, ratio,
        relative_gap, std`` and ``group:<g>``.
    summary : pandas.DataFrame
        One row per (slice, bias measure): ``min_error_layer, min_bias_layer,
        max_bias_layer, spearman`` (error vs bias across layers) with ``ci_low, ci_high``.
    """

    curves: pd.DataFrame
    summary: pd.DataFrame


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
        m = speaker_matrix(sub, rows=["layer_index", "layer"])
        K, N, L = m.errors, m.n, m.errors.shape[0]
        G = len(m.group_names)
        M = np.eye(G)[m.codes]
        obs = gap_statistics(K @ M, N @ M)                                  # (L,)
        bidx = speaker_bootstrap_indices(m.codes, n_boot, rng)
        boot = gap_statistics(K[:, bidx] @ M, N[:, bidx] @ M)               # (L, B)
        pidx = speaker_permutation_indices(K.shape[1], n_perm, rng)
        null = gap_statistics(np.moveaxis(K[:, pidx], 1, 0) @ M, np.moveaxis(N[:, pidx], 1, 0) @ M)
        p = {s: permutation_pvalue(obs[s], null[s]) for s in ("worst", "difference",
                                                                "relative_gap", "std")}
        p["ratio"] = permutation_pvalue(-obs["ratio"], -null["ratio"])
        _, pg = group_vs_rest(m.rates, m.codes, n_perm=n_perm, rng=rng, alternative="two-sided")
        n_spk = m.n_speakers
        for s in SUMMARY_STATISTICS:
            lo, hi = percentile_ci(boot[s], alpha, axis=1, n_clusters=clusters_behind(s, n_spk))
            curves.append(pd.DataFrame({**key, "train_set": train_set, **m.keys, "statistic": s,
                                        "estimate": obs[s], "ci_low": lo, "ci_high": hi,
                                        "p_value": p.get(s, np.full(L, np.nan)),
                                        "n_speakers": int(n_spk.sum())}))
        for gi, g in enumerate(m.group_names):
            lo, hi = percentile_ci(boot["by_group"][..., gi], alpha, axis=1,
                                   n_clusters=int(n_spk[g]))
            curves.append(pd.DataFrame({**key, "train_set": train_set, **m.keys,
                                        "statistic": f"group:{g}", "estimate": obs["by_group"][:, gi],
                                        "ci_low": lo, "ci_high": hi, "p_value": pg[:, gi],
                                        "n_speakers": int(n_spk[g])}))
        layers = m.keys["layer"].to_numpy()
        for b in BIAS_MEASURES:
            rho = float(spearman(obs["overall"], obs[b])) if L >= 3 else np.nan
            rb = spearman(boot["overall"], boot[b], axis=0) if L >= 3 else np.full(n_boot, np.nan)
            lo, hi = (percentile_ci(rb, alpha, n_clusters=int(n_spk.min())) if L >= 3
                      else (np.nan, np.nan))
            summaries.append({**key, "train_set": train_set, "bias_measure": b, "n_layers": L,
                              "n_speakers": int(n_spk.sum()),
                              "min_error_layer": layers[np.nanargmin(obs["overall"])],
                              "min_bias_layer": layers[np.nanargmin(obs[b])],
                              "max_bias_layer": layers[np.nanargmax(obs[b])],
                              "spearman": rho, "ci_low": float(lo), "ci_high": float(hi)})
    return LayerwiseBias(curves=pd.concat(curves, ignore_index=True),
                         summary=pd.DataFrame(summaries))
