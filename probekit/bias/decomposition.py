"""Random variance vs systematic bias: two separately tested quantities and a typing rule.

For every slice, layer and group (probes trained on every group, ``train_set="all"``):

* **systematic**: is the group's speaker-mean error above the other speakers'? One-sided
  studentized (Welch t) permutation test, group labels shuffled across speakers;
* **random**: is the group's between-speaker spread above the other groups'? The statistic
  is the group's beta-binomial speaker intraclass correlation minus the mean of the other
  groups' (``"speaker_icc"``, from the results table), or, when phone-embedding dispersion
  for that layer is given, the Welch t of the group's mean dispersion ``D_s`` against the
  other speakers (``"embedding"``), one-sided, same permutation scheme.

Holm's correction is applied across the groups of one layer for each of the two tests. The
typing rule (our choice, documented in docs/concepts.md) at level ``alpha``:

    systematic and random -> "both";  systematic only -> "systematic";
    random only -> "random";          neither -> "neither".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from probekit.bias._slices import iter_slices
from probekit.bias.errors import BiasInputError
from probekit.bias.permutation import group_vs_rest, holm, speaker_icc
from probekit.bias.speakers import speaker_matrix

__all__ = ["type_groups", "TYPES", "typing_rule"]

TYPES = ("neither", "systematic", "random", "both")


def typing_rule(systematic: np.ndarray, random: np.ndarray) -> np.ndarray:
    """Vectorised typing rule from two boolean arrays."""
    return np.asarray(TYPES, dtype=object)[np.asarray(systematic, int) + 2 * np.asarray(random, int)]


def type_groups(df: pd.DataFrame, *, dispersion: pd.DataFrame | None = None,
                train_set: str = "all", alpha: float = 0.05, n_perm: int = 999,
                seed: int = 0) -> pd.DataFrame:
    """Type each group at each layer as "systematic", "random", "both" or "neither".

    Parameters
    ----------
    df : results table
    dispersion : DataFrame, optional
        Per-speaker embedding dispersion with columns ``layer, group_attribute, speaker,
        group, dispersion`` (from :func:`probekit.bias.dispersion.speaker_dispersion`, one
        frame per layer, concatenated). Used as the random-variance evidence for the phone
        task at the layers and attribute it covers.

    Returns
    -------
    DataFrame, one row per (slice, layer, group): ``group_error``, ``systematic_stat``,
    ``systematic_p`` (Holm), ``speaker_icc``, ``random_stat``, ``random_p`` (Holm),
    ``random_source``, ``type``, ``n_speakers``.
    """
    out = []
    for key, sub in iter_slices(df, [train_set]):
        rng = np.random.default_rng(seed)
        m = speaker_matrix(sub, rows=["layer_index", "layer"])
        rates, G = m.rates, len(m.group_names)
        t_sys, p_sys = group_vs_rest(rates, m.codes, statistic="mean", n_perm=n_perm, rng=rng)
        t_icc, p_icc = group_vs_rest(rates, m.codes, statistic="icc", n=m.n, n_perm=n_perm, rng=rng)
        M = np.eye(G)[m.codes]
        cnt = M.sum(0)
        icc = speaker_icc(rates, 1.0 / m.n, M, cnt)
        gerr = (m.errors @ M) / (m.n @ M)
        for r, (li, layer) in enumerate(m.keys[["layer_index", "layer"]].itertuples(index=False)):
            t_r, p_r, src = t_icc[r], p_icc[r], "speaker_icc"
            if dispersion is not None and key["task"] == "phone":
                dl = dispersion[(dispersion["layer"].astype(str) == str(layer)) &
                                (dispersion["group_attribute"].astype(str) == key["group_attribute"])]
                if len(dl):
                    t_r, p_r = _embedding_test(dl, m.group_names, n_perm, rng)
                    src = "embedding"
            ps, pr = holm(p_sys[r]), holm(p_r)
            out.append(pd.DataFrame({**key, "train_set": train_set, "layer_index": li,
                                     "layer": layer, "group": m.group_names,
                                     "group_error": gerr[r], "systematic_stat": t_sys[r],
                                     "systematic_p": ps, "speaker_icc": icc[r],
                                     "random_stat": t_r, "random_p": pr, "random_source": src,
                                     "type": typing_rule(ps <= alpha, pr <= alpha),
                                     "n_speakers": cnt.astype(int)}))
    return pd.concat(out, ignore_index=True)


def _embedding_test(dl: pd.DataFrame, group_names, n_perm, rng):
    dl = dl.sort_values(["group", "speaker"])
    names = list(group_names)
    unknown = sorted(set(dl["group"].astype(str)) - set(names))
    if unknown:
        raise BiasInputError(f"dispersion has group(s) {unknown} absent from the results table")
    codes = np.array([names.index(g) for g in dl["group"].astype(str)])
    if np.bincount(codes, minlength=len(names)).min() < 2:
        missing = [g for g, c in zip(names, np.bincount(codes, minlength=len(names))) if c < 2]
        raise BiasInputError(f"dispersion has fewer than 2 speakers of group {missing[0]!r}")
    return group_vs_rest(dl["dispersion"].to_numpy(float), codes, statistic="mean",
                         n_perm=n_perm, rng=rng)
