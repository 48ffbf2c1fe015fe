"""Calibration of the before/after comparison of *retrained* probes (issue 19, item 2).

Two encoders are probed on the same test speakers with the same grid seeds (one split per
seed, half of each group's speakers tested per split). Each encoder's probes are retrained in
every split, so the training draw moves the test speakers of a split together, differently
for the two encoders:

* speaker error ``p_s``: group mean (a real gap before: 0.20, 0.22, 0.25, 0.30) plus a
  speaker effect (sd 0.04) shared by both encoders;
* per encoder, layer and split: a split offset (sd ``split_sd`` 0.04), a group x split offset
  (sd ``group_split_sd`` 0.025) and a speaker x probe offset (sd ``speaker_probe_sd`` 0.015);
* binomial counts of 80 items per (split, speaker).

Null: no true change (both encoders share ``p_s``). Planted: at layer 2 the after encoder
removes the group offsets (the gap falls from 0.10 to 0) and lowers every error by 0.05.

Keys (rates over draws, 5% level; ``_K3`` the same design with 3 splits, the CLI default):

* ``reject_paired_<stat>_retrained``: :func:`probekit.bias.compare.split_change` at layer 0
  rejects no change (``group``: the mean over the 4 groups' rejections); ``gap`` is the max -
  min ``difference``; ``gap_fwer``: any of the 4 layers after Holm;
* ``cover_paired_<stat>_retrained``: its 95% interval covers the true change (0);
* ``power_paired_gap_retrained``, ``power_paired_macro_retrained``: rejection of the
  planted gap and macro changes at layer 2 (Holm over the 4 layers);
* ``old_reject_paired_<stat>_retrained``: the baseline, measured in the same run: the
  former comparison (speaker counts pooled over splits, probes treated as fixed:
  :func:`probekit.bias.paired.paired_change`) on the same draws;
* ``ratio_reject_macro_old_over_new``.

    python benchmarks/calib_paired.py [n_draws]      # prints one BENCH line

:func:`run` returns the keys as a dict (the hook for ``benchmarks/calibration.py``).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from probekit.bias.compare import split_change
from probekit.bias.metrics import parse_statistic, statistic_name
from probekit.bias.paired import paired_change

G, SPK, L, ITEMS = 4, 10, 4, 80
GROUP_MU = np.array([0.20, 0.22, 0.25, 0.30])


def simulate_retrained(rng: np.random.Generator, *, K: int = 10, reduction: float = 0.0,
                       shift: float = 0.0, layer: int = 2, split_sd: float = 0.04,
                       group_split_sd: float = 0.025,
                       speaker_probe_sd: float = 0.015):
    """``(before, after, n, codes)``: error rates (L, K, S) of two encoders (NaN where the
    speaker was not tested in that split), items (L, K, S) and group codes (S,).

    At ``layer`` the after encoder removes ``reduction`` of the group offsets and adds
    ``shift`` to every speaker's error."""
    S = G * SPK
    codes = np.repeat(np.arange(G), SPK)
    test = np.zeros((K, S), bool)
    for k in range(K):
        for g in range(G):
            test[k, rng.permutation(np.flatnonzero(codes == g))[:SPK // 2]] = True
    p_s = GROUP_MU[codes] + rng.normal(0, 0.04, S)

    def encoder(delta):
        off = (rng.normal(0, split_sd, (L, K, 1)) + rng.normal(0, group_split_sd, (L, K, G))[..., codes]
               + rng.normal(0, speaker_probe_sd, (L, K, S)))
        p = np.clip(p_s + delta + off, 0.0, 1.0)
        r = rng.binomial(ITEMS, p) / ITEMS
        return np.where(test, r, np.nan)

    delta = np.zeros((L, 1, S))
    delta[layer] = shift - reduction * (GROUP_MU - GROUP_MU.mean())[codes]
    n = np.where(test, ITEMS, 0) * np.ones((L, 1, 1))
    return encoder(0.0), encoder(delta), n, codes


def results_table(before, after, n, codes) -> pd.DataFrame:
    """The two encoders' arrays as a probe results table (``base`` and ``tuned``)."""
    rows = []
    for enc, X in (("base", before), ("tuned", after)):
        l, k, s = np.nonzero(~np.isnan(X))
        rows.append(pd.DataFrame({
            "encoder": enc, "layer": [f"layer{i}" for i in l], "layer_index": l, "task": "phone",
            "probe": "lda", "group_attribute": "accent", "train_set": "all",
            "test_group": [f"g{c}" for c in codes[s]], "seed": k,
            "unit": [f"g{codes[i]}_s{i:02d}" for i in s], "metric": "error", "value": X[l, k, s],
            "n": n[l, k, s].astype(int), "n_train": 400, "n_train_speakers": SPK // 2}))
    return pd.concat(rows, ignore_index=True)


def _old(before, after, n, codes):
    """The former comparison: each speaker's counts pooled over its splits, swap test."""
    pool = lambda X: np.nansum(np.where(np.isnan(X), 0.0, X) * n, 1)  # noqa: E731
    N = n.sum(1)
    keep = N[0] > 0                                        # speakers tested in some split
    N, codes = N[:, keep], codes[keep]
    t = paired_change(pool(before)[:, keep], N, pool(after)[:, keep], N,
                      np.array([f"g{c}" for c in codes]),
                      statistics=("macro", "overall", "difference", "group"),
                      n_boot=199, n_perm=199, seed=0).table
    # rows are named by weighting (pooled_macro, pooled_group:g0, ...): index them unpooled
    kind = t["statistic"].map(parse_statistic)
    return t.assign(statistic=[statistic_name(k, g) for k, g, _ in kind]
                    ).set_index(["statistic", "row"])


def run(n_draws: int = 400, seed: int = 0, *, splits=(10, 3),
        baseline: bool = True) -> dict:
    """Rejection, coverage and power rates (see the module docstring)."""
    rng = np.random.default_rng(seed)
    stats = ("macro", "overall", "group", "gap")
    hits: dict = {}

    def add(key, val):
        hits[key] = hits.get(key, 0.0) + float(val)

    for K in splits:
        sfx = "_retrained" if K == 10 else f"_retrained_K{K}"
        for _ in range(n_draws):
            b, a, n, codes = simulate_retrained(rng, K=K)
            t = split_change(b, a, codes, [f"g{g}" for g in range(G)],
                             statistics=("macro", "overall", "difference", "group"))
            t = t.assign(kind=t["statistic"].map(lambda s: "group" if s.startswith("group:")
                                                 else {"difference": "gap"}.get(s, s)))
            at0 = t[t["row"] == 0]
            for s in stats:
                x = at0[at0["kind"] == s]
                add(f"reject_paired_{s}{sfx}", (x["p_value"] <= 0.05).mean())
                add(f"cover_paired_{s}{sfx}", ((x["ci_low"] <= 0) & (0 <= x["ci_high"])).mean())
            add(f"reject_paired_gap_fwer{sfx}", (t.loc[t["kind"] == "gap", "p_fwer"] <= 0.05).any())
            if baseline and K == 10:
                o = _old(b, a, n, codes)
                for s, name in (("macro", "macro"), ("overall", "overall"), ("difference", "gap")):
                    add(f"old_reject_paired_{name}{sfx}", o.at[(s, 0), "p_value"] <= 0.05)
                og = o.loc[[i for i in o.index if i[0].startswith("group:") and i[1] == 0]]
                add(f"old_reject_paired_group{sfx}", (og["p_value"] <= 0.05).mean())
            b, a, n, codes = simulate_retrained(rng, K=K, reduction=1.0, shift=-0.05)
            t = split_change(b, a, codes, [f"g{g}" for g in range(G)],
                             statistics=("difference", "macro")).set_index(["statistic", "row"])
            add(f"power_paired_gap{sfx}", t.at[("difference", 2), "p_fwer"] <= 0.05)
            add(f"power_paired_macro{sfx}", t.at[("macro", 2), "p_fwer"] <= 0.05)
    out = {k: round(v / n_draws, 4) for k, v in hits.items()}
    if baseline and 10 in splits and out.get("reject_paired_macro_retrained"):
        out["ratio_reject_macro_old_over_new"] = round(
            out["old_reject_paired_macro_retrained"] / out["reject_paired_macro_retrained"], 2)
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    t0 = time.perf_counter()
    res = run(n)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print("BENCH " + " ".join(f"{k}={v}" for k, v in res.items()))
