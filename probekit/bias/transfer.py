"""Cross-group transfer (after seed 001, "typifying demographic unfairness in phoneme embeddings").

Three reads of the probes trained on one group and tested on every group:

* the train-set x test-group error matrix per layer, CIs by a cluster bootstrap over the
  *test* speakers (the trained probes are held fixed; seeds are pooled);
* own-group vs broadly-trained probe on the group's own speakers: the paired per-speaker
  difference ``d_s = e_s(own) - e_s(all)`` (and vs ``all-but:<g>``), its mean with a CI and a
  sign-flip p-value. An own-group probe that reliably wins (CI below 0) is the seed's sign of
  systematic bias;
* do probes trained on harder groups generalise better? Spearman correlation across groups
  between a group's own error ``E[g, g]`` and its probe's mean off-diagonal accuracy measured
  *relative to the other probes on the same test group*
  ``a_g = -mean_{h != g} (E[g, h] - mean_t E[t, h])``. The centring is our choice: without it a
  hard test group lowers its own row's off-diagonal error simply by being left out, which
  makes the raw correlation positive with no transfer effect at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from math import factorial

import numpy as np
import pandas as pd

from probekit.bias._slices import iter_slices, spearman
from probekit.bias.errors import BiasInputError
from probekit.bias.permutation import paired_signflip, permutation_pvalue
from probekit.bias.resample import percentile_ci, speaker_bootstrap_indices
from probekit.bias.speakers import speaker_matrix

__all__ = ["Transfer", "cross_group_transfer", "POOLED"]

#: ``group`` label of the own-vs-broad rows that pool every group's speakers.
POOLED = "(pooled)"


@dataclass(frozen=True)
class Transfer:
    """Result of :func:`cross_group_transfer` (tidy frames).

    Attributes
    ----------
    matrix : one row per (slice, layer, train_set, test_group): ``error, ci_low, ci_high,
        n_speakers``.
    own_vs_broad : one row per (slice, layer, group, reference in {"all", "all-but"}):
        ``own_error, reference_error, difference`` (own - reference), ``ci_low, ci_high,
        p_value`` (sign flip), ``seeds_won`` (fraction of probe seeds in which the own-group
        probe had the lower group error), ``reliable_win`` (difference < 0, p <= alpha and
        every seed won: the decision rule, since a CI from 3-5 speakers is fragile and the
        sign-flip test cannot reach alpha = 0.05 with fewer than 6 speakers), ``n_speakers``.
        Rows with ``group == "(pooled)"`` pool every group's speakers (each against its own
        group's probe); their ``seeds_won`` is the fraction of (group, seed) pairs won and
        their ``reliable_win`` needs only mean < 0 and p <= alpha.
    generalisation : one row per (slice, layer): ``spearman`` (own error vs relative
        off-diagonal accuracy) with ``ci_low, ci_high, p_value, n_groups``.
    """

    matrix: pd.DataFrame
    own_vs_broad: pd.DataFrame
    generalisation: pd.DataFrame


def _pairing_null(G: int, n_perm: int, rng) -> np.ndarray:
    if factorial(G) <= n_perm:
        return np.array(list(permutations(range(G))))
    return rng.permuted(np.broadcast_to(np.arange(G), (n_perm, G)), axis=1)


def cross_group_transfer(df: pd.DataFrame, *, n_boot: int = 1000, n_perm: int = 1000,
                         alpha: float = 0.05, seed: int = 0) -> Transfer:
    """Transfer matrices, own-vs-broad comparisons and the generalisation correlation."""
    mats, owns, gens = [], [], []
    for key, sub in iter_slices(df):
        rng = np.random.default_rng(seed)
        groups = sorted(sub["test_group"].astype(str).unique())
        tsets = [t for t in sorted(sub["train_set"].astype(str).unique())
                 if t in groups or t == "all" or t.startswith("all-but:")]
        if not any(t in groups for t in tsets):
            continue   # no group-trained probes in this slice: nothing to transfer
        sub = sub[sub["train_set"].astype(str).isin(tsets)]
        m = speaker_matrix(sub, rows=["layer_index", "layer", "train_set"])
        G = len(m.group_names)
        M = np.eye(G)[m.codes]
        keys = m.keys
        bidx = speaker_bootstrap_indices(m.codes, n_boot, rng)
        E = (m.errors @ M) / (m.n @ M)                                     # (R, G)
        Eb = (m.errors[:, bidx] @ M) / (m.n[:, bidx] @ M)                  # (R, B, G)
        n_spk = m.n_speakers.to_numpy()
        lo, hi = np.empty_like(E), np.empty_like(E)
        for gi in range(G):
            lo[:, gi], hi[:, gi] = percentile_ci(Eb[..., gi], alpha, axis=1,
                                                 n_clusters=int(n_spk[gi]))
        for gi, g in enumerate(m.group_names):
            mats.append(pd.DataFrame({**key, **keys, "test_group": g, "error": E[:, gi],
                                      "ci_low": lo[:, gi], "ci_high": hi[:, gi],
                                      "n_speakers": int(n_spk[gi])}))
        rates = m.rates
        spk = sub[sub["unit"].astype(str) != "all"]
        seed_err = (spk.assign(k=spk["value"] * spk["n"])
                       .groupby(["layer", "train_set", "test_group", "seed"])[["k", "n"]].sum())
        seed_err = seed_err["k"] / seed_err["n"]
        for (li, layer), idx in keys.groupby(["layer_index", "layer"]).groups.items():
            ts = dict(zip(keys.loc[idx, "train_set"], idx))
            pooled = {"all": ([], [], [], [], [], []), "all-but": ([], [], [], [], [], [])}
            for gi, g in enumerate(m.group_names):
                if g not in ts:
                    continue
                pos = np.flatnonzero(m.codes == gi)
                for ref_name, ref in (("all", "all"), ("all-but", f"all-but:{g}")):
                    if ref not in ts:
                        continue
                    d = rates[ts[g], pos] - rates[ts[ref], pos]
                    mean, p = paired_signflip(d, n_perm=n_perm, rng=rng)
                    dboot = d[rng.integers(0, d.size, (n_boot, d.size))].mean(1)
                    blo, bhi = percentile_ci(dboot, alpha, n_clusters=d.size)
                    won = _seeds_won(seed_err, layer, g, ref)
                    for lst, v in zip(pooled[ref_name], (d, [won], m.errors[ts[g], pos],
                                                         m.n[ts[g], pos], m.errors[ts[ref], pos],
                                                         m.n[ts[ref], pos])):
                        lst.append(np.asarray(v, float))
                    owns.append({**key, "layer_index": li, "layer": layer, "group": g,
                                 "reference": ref_name, "own_error": E[ts[g], gi],
                                 "reference_error": E[ts[ref], gi], "difference": float(mean),
                                 "ci_low": float(blo), "ci_high": float(bhi),
                                 "p_value": float(p), "seeds_won": won,
                                 "reliable_win": bool(mean < 0 and p <= alpha and won == 1.0),
                                 "n_speakers": int(pos.size)})
            for ref_name, (ds, wons, ko, no, kr, nr) in pooled.items():
                if len(ds) < 2:
                    continue
                # every group's speakers together: is there an own-group advantage overall?
                d = np.concatenate(ds)
                mean, p = paired_signflip(d, n_perm=n_perm, rng=rng)
                grp_codes = np.concatenate([np.full(x.size, i) for i, x in enumerate(ds)])
                bidx = speaker_bootstrap_indices(grp_codes, n_boot, rng)
                blo, bhi = percentile_ci(d[bidx].mean(1), alpha, n_clusters=d.size)
                won = float(np.nanmean(np.concatenate(wons)))
                tot = lambda parts: float(np.concatenate(parts).sum())
                owns.append({**key, "layer_index": li, "layer": layer, "group": POOLED,
                             "reference": ref_name,
                             "own_error": tot(ko) / tot(no),
                             "reference_error": tot(kr) / tot(nr),
                             "difference": float(mean), "ci_low": float(blo),
                             "ci_high": float(bhi), "p_value": float(p), "seeds_won": won,
                             "reliable_win": bool(mean < 0 and p <= alpha),
                             "n_speakers": int(d.size)})
            gtr = [g for g in m.group_names if g in ts]
            if len(gtr) < 3:
                continue
            rows = np.array([ts[g] for g in gtr])
            cols = np.array([m.group_names.index(g) for g in gtr])
            own, acc = _own_and_relative_accuracy(E[rows][:, cols])
            ownb, accb = _own_and_relative_accuracy(Eb[rows][:, :, cols].transpose(1, 0, 2))
            rho = float(spearman(own, acc))
            perm = _pairing_null(len(gtr), n_perm, rng)
            null = spearman(np.broadcast_to(own, perm.shape), acc[perm], axis=1)
            glo, ghi = percentile_ci(spearman(ownb, accb, axis=1), alpha,
                                     n_clusters=int(n_spk.min()))
            gens.append({**key, "layer_index": li, "layer": layer, "spearman": rho,
                         "ci_low": float(glo), "ci_high": float(ghi),
                         "p_value": float(permutation_pvalue(abs(rho), np.abs(null))),
                         "n_groups": len(gtr), "n_speakers": int(n_spk.sum())})
    if not mats:
        raise BiasInputError("no probes trained on a single group (train_set equal to a "
                             "test_group label): cross-group transfer needs them")
    return Transfer(matrix=pd.concat(mats, ignore_index=True), own_vs_broad=pd.DataFrame(owns),
                    generalisation=pd.DataFrame(gens))


def _seeds_won(seed_err: pd.Series, layer, group: str, ref: str) -> float:
    """Fraction of probe seeds whose own-group probe has lower error on the group than ``ref``.

    ``seed_err``: group error indexed by (layer, train_set, test_group, seed)."""
    try:
        own, other = seed_err.loc[(layer, group, group)], seed_err.loc[(layer, ref, group)]
    except KeyError:
        return float("nan")
    both = pd.concat([own, other], axis=1, keys=["own", "ref"]).dropna()
    return float((both["own"] < both["ref"]).mean()) if len(both) else float("nan")


def _own_and_relative_accuracy(E: np.ndarray):
    """``E`` (..., G_train, G_test) over the same groups -> own error and relative accuracy (..., G)."""
    G = E.shape[-1]
    own = np.diagonal(E, axis1=-2, axis2=-1)
    rel = E - E.mean(-2, keepdims=True)
    off = (rel.sum(-1) - np.diagonal(rel, axis1=-2, axis2=-1)) / (G - 1)
    return own, -off
