"""Cross-group transfer (after seed 001, "typifying demographic unfairness in phoneme embeddings").

Three reads of the probes trained on one group and tested on every group:

* the train-set x test-group error matrix per layer (split-averaged speaker means, two-level
  bootstrap intervals: splits, then test speakers);
* **own-group vs broadly trained probe** on the group's own held-out speakers, seed 001's
  sign of systematic bias: the difference ``e_s(own) - e_s(reference)`` of every test
  speaker in every split, averaged with equal weight per split, tested with a two-way
  (speaker x split) cluster-robust t (:func:`~probekit.bias.inference.twoway_cluster_t`), so
  which speakers trained the two probes counts as a source of variance. References: ``all``
  (every group, as many examples but more speakers), ``all-matched`` (every group, the same
  number of speakers *and* examples as the own-group probe: the comparison that holds
  speaker diversity fixed) and ``all-but`` (every other group: a domain-shift comparison);
* do probes trained on harder groups generalise better? Spearman correlation across groups
  between a group's own error ``E[g, g]`` and its probe's off-diagonal accuracy relative to
  the other probes on the same test group ``a_g = -mean_{h != g} (E[g, h] - mean_t E[t, h])``
  (centring is our choice; without it a hard test group lowers its own row's off-diagonal
  error by being left out). Its p-value enumerates every pairing of rows and columns
  (exact when ``G! <= n_perm``); it is descriptive: no calibration covers it under the
  training draw, and the report does not print it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from math import factorial

import numpy as np
import pandas as pd

from probekit.bias._slices import iter_slices, spearman
from probekit.bias.design import group_moments, split_matrix
from probekit.bias.errors import BiasInputError
from probekit.bias.inference import permutation_pvalue, twoway_cluster_t
from probekit.bias.resample import map_split_bootstrap, percentile_ci

__all__ = ["Transfer", "cross_group_transfer", "POOLED", "REFERENCES", "own_vs_broad_cells"]

#: How the table weighs its data (docs/concepts.md, "Weightings"):
#: each test speaker's split-averaged rate counts once.
WEIGHTING = "speakers"

#: ``group`` label of the own-vs-broad rows that pool every group's speakers.
POOLED = "(pooled)"
#: Broad references of the own-vs-broad comparison, in order of preference for the typing.
REFERENCES = ("all-matched", "all", "all-but")


@dataclass(frozen=True)
class Transfer:
    """Result of :func:`cross_group_transfer` (tidy frames).

    Attributes
    ----------
    matrix : one row per (slice, layer, train_set, test_group): ``error, ci_low, ci_high,
        n_speakers``.
    own_vs_broad : one row per (slice, layer, group, reference): ``own_error,
        reference_error, difference`` (own - reference, mean over splits), ``ci_low,
        ci_high`` (corrected t interval), ``p_less`` (one-sided: own beats reference),
        ``p_value`` (two-sided), ``t, df, n_splits, splits_won`` (fraction of splits in which
        the own-group probe had the lower error), ``n_per_split`` (test speakers of the group
        per split), ``n_speakers`` (distinct), ``reason``. Rows with ``group == "(pooled)"``
        pool every group's speakers (each against its own group's probe).
    generalisation : one row per (slice, layer): ``spearman, p_value, n_groups`` (descriptive).
    """

    matrix: pd.DataFrame
    own_vs_broad: pd.DataFrame
    generalisation: pd.DataFrame


def _pairing_null(G: int, n_perm: int, rng) -> tuple[np.ndarray, bool]:
    if factorial(G) <= n_perm:
        return np.array(list(permutations(range(G)))), True
    return rng.permuted(np.broadcast_to(np.arange(G), (n_perm, G)), axis=1), False


def _ref_name(ref: str, g: str) -> str:
    from probekit.probes.splits import TrainSet  # not at import: probekit.probes loads torch
    return str(TrainSet("all-but", g)) if ref == "all-but" else ref


def own_vs_broad_cells(rates: np.ndarray, own_row: int, ref_row: int, pos: np.ndarray) -> np.ndarray:
    """``own - reference`` error of the speakers ``pos`` in every split: (K, len(pos)), NaN
    where a speaker was not tested by both probes. ``rates`` is (R, K, S)."""
    return rates[own_row][:, pos] - rates[ref_row][:, pos]


def cross_group_transfer(df: pd.DataFrame, *, n_boot: int = 1000, n_perm: int = 1000,
                         alpha: float = 0.05, seed: int = 0) -> Transfer:
    """Transfer matrices, own-vs-broad comparisons and the generalisation correlation."""
    mats, owns, gens = [], [], []
    for key, sub in iter_slices(df):
        rng = np.random.default_rng(seed)
        groups = sorted(sub["test_group"].astype(str).unique())
        from probekit.probes.splits import TrainSet
        tsets = [t for t in sorted(sub["train_set"].astype(str).unique())
                 if t in groups or TrainSet.parse(t).pooled]
        if not any(t in groups for t in tsets):
            continue   # no group-trained probes in this slice: nothing to transfer
        sub = sub[sub["train_set"].astype(str).isin(tsets)]
        m = split_matrix(sub, rows=["layer_index", "layer", "train_set"])
        G, K = len(m.group_names), len(m.splits)
        rates = m.rates                                                    # (R, K, S)
        r = m.speaker_rates()                                              # (R, S)
        E = group_moments(r, m.codes, G)[0]                                # (R, G)
        Eb = map_split_bootstrap(rates, m.codes, n_boot, rng,                # (B, R, G)
                                 lambda x: group_moments(x, m.codes, G, means_only=True)[0])
        n_spk = m.n_speakers()
        for gi, g in enumerate(m.group_names):
            lo, hi = percentile_ci(Eb[..., gi], alpha, axis=0, n_clusters=max(int(n_spk[gi]), 2))
            mats.append(pd.DataFrame({**key, **m.keys, "test_group": g, "error": E[:, gi],
                                      "ci_low": lo, "ci_high": hi, "n_speakers": int(n_spk[gi])}))
        keys = m.keys
        S_all = m.speakers.size
        for (li, layer), idx in keys.groupby(["layer_index", "layer"]).groups.items():
            ts = dict(zip(keys.loc[idx, "train_set"], idx))
            for ref in REFERENCES:
                cells, own_e, ref_e = [], [], []
                for gi, g in enumerate(m.group_names):
                    rn = _ref_name(ref, g)
                    if g not in ts or rn not in ts:
                        continue
                    pos = np.flatnonzero(m.codes == gi)
                    d = own_vs_broad_cells(rates, ts[g], ts[rn], pos)
                    cells.append(d)
                    own_e.append(E[ts[g], gi])
                    ref_e.append(E[ts[rn], gi])
                    owns.append(_own_row(key, li, layer, g, ref, d, alpha, E[ts[g], gi],
                                         E[ts[rn], gi], int(pos.size)))
                if len(cells) >= 2:
                    owns.append(_own_row(key, li, layer, POOLED, ref, np.concatenate(cells, 1),
                                         alpha, np.mean(own_e), np.mean(ref_e), int(S_all)))
            gtr = [g for g in m.group_names if g in ts]
            if len(gtr) >= 3:
                gens.append(_generalisation(key, li, layer, E, ts, gtr, m.group_names, n_perm, rng))
    if not mats:
        raise BiasInputError("no probes trained on a single group (train_set equal to a "
                             "test_group label): cross-group transfer needs them")
    # every table weighs each test speaker's split-averaged rate once (docs/concepts.md)
    named = lambda t: t.assign(weighting=WEIGHTING) if len(t.columns) else t  # noqa: E731
    return Transfer(matrix=named(pd.concat(mats, ignore_index=True)),
                    own_vs_broad=named(pd.DataFrame(owns)), generalisation=named(pd.DataFrame(gens)))


def _own_row(key, li, layer, g, ref, d, alpha, own_e, ref_e, n_distinct):
    """One own-vs-broad row from the (K, S) cell differences ``d``."""
    ct = twoway_cluster_t(d, alpha)
    k = int(ct["k"])
    reason = ""
    if k < 2:
        reason = "one split only: the training draw cannot be assessed (run more probe seeds)"
    elif ct["se"] == 0 and ct["mean"] == 0:
        reason = "the two probes make identical errors"
    ok_cells = ~np.isnan(d)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_split = np.where(ok_cells, d, 0.0).sum(1) / ok_cells.sum(1)
    ok = ~np.isnan(per_split)
    return {**key, "layer_index": li, "layer": layer, "group": g, "reference": ref,
            "own_error": float(own_e), "reference_error": float(ref_e),
            "difference": float(ct["mean"]), "ci_low": float(ct["ci_low"]),
            "ci_high": float(ct["ci_high"]), "t": float(ct["t"]), "df": float(ct["df"]),
            "p_less": float(ct["p_less"]), "p_value": float(ct["p_two"]), "n_splits": k,
            "splits_won": float((per_split[ok] < 0).mean()) if ok.any() else np.nan,
            "n_per_split": float(np.median((~np.isnan(d)).sum(1)[ok])) if ok.any() else 0.0,
            "n_speakers": n_distinct, "reason": reason}


def _generalisation(key, li, layer, E, ts, gtr, group_names, n_perm, rng):
    rows = np.array([ts[g] for g in gtr])
    cols = np.array([group_names.index(g) for g in gtr])
    own, acc = _own_and_relative_accuracy(E[rows][:, cols])
    rho = float(spearman(own, acc))
    perm, exact = _pairing_null(len(gtr), n_perm, rng)
    null = spearman(np.broadcast_to(own, perm.shape), acc[perm], axis=1)
    if exact:   # the identity is among the enumerated pairings: no +1
        p = float(np.mean(np.abs(null) >= abs(rho) - 1e-12)) if not np.isnan(rho) else np.nan
    else:
        p = float(permutation_pvalue(abs(rho), np.abs(null)))
    return {**key, "layer_index": li, "layer": layer, "spearman": rho, "p_value": p,
            "n_groups": len(gtr)}


def _own_and_relative_accuracy(E: np.ndarray):
    """``E`` (..., G_train, G_test) over the same groups -> own error and relative accuracy (..., G)."""
    G = E.shape[-1]
    own = np.diagonal(E, axis1=-2, axis2=-1)
    rel = E - E.mean(-2, keepdims=True)
    off = (rel.sum(-1) - np.diagonal(rel, axis1=-2, axis2=-1)) / (G - 1)
    return own, -off
