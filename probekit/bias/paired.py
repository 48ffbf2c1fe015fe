"""Paired before/after change of per-speaker *counts* with no training draw (e.g. WER of two
models on the same test speakers, :func:`probekit.bias.wer.wer_table`): a paired speaker
bootstrap and a paired permutation (swap) test with Westfall-Young step-down max-T over rows.

Probe results, whose probes were retrained per split, are compared with the split design
instead (:func:`probekit.bias.compare.split_change`): a per-speaker swap test treats each
encoder's trained probes as fixed and over-rejects when the probes' training draw moves
every test speaker together (docs/concepts.md, "Before/after comparisons").
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from probekit.bias.errors import BiasInputError
from probekit.bias.inference import maxt_stepdown
from probekit.bias.metrics import (SUMMARY_STATISTICS, WEIGHTINGS, group_statistics,
                                   statistic_name)
from probekit.bias.permutation import permutation_pvalue
from probekit.bias.resample import percentile_ci, speaker_bootstrap_indices

__all__ = ["PairedChange", "paired_change"]


def _stats(K: np.ndarray, N: np.ndarray, codes: np.ndarray, names: Sequence[str],
           weighting: str) -> dict:
    """Summary and gap statistics (:func:`~probekit.bias.metrics.group_statistics`) and one
    entry per group, keyed by kind (``"overall"``, ..., ``("group", g)``): (..., S) -> (...)."""
    st = group_statistics(K, N, codes, len(names), weighting=weighting)
    out = {k: st[k] for k in SUMMARY_STATISTICS}
    out.update({("group", g): st["by_group"][..., j] for j, g in enumerate(names)})
    return out


def _swap_signs(S: int, n_perm: int, rng) -> tuple[np.ndarray, bool]:
    """Swap patterns (P, S) of bool; every pattern when ``2**S <= n_perm`` (exact test)."""
    if S <= 20 and 2 ** S <= n_perm:
        return ((np.arange(2 ** S)[:, None] >> np.arange(S)) & 1).astype(bool), True
    return rng.random((n_perm, S)) < 0.5, False


@dataclass(frozen=True)
class PairedChange:
    """Result of :func:`paired_change` for R rows (e.g. layers) of one slice.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (row, statistic; named by its weighting, ``pooled_difference``, ...):
        ``weighting``, ``before, after, change`` (after - before),
        ``ci_low, ci_high`` (paired speaker bootstrap), ``p_value`` (two-sided paired
        permutation), ``p_fwer`` (Westfall-Young step-down max-T over the rows, per
        statistic), ``n_speakers`` (speakers behind the statistic), ``n_items``.
    speaker_differences : numpy.ndarray (R, S)
        Per-speaker error rate after minus before.
    exact : bool
        True when every swap pattern was enumerated.
    """

    table: pd.DataFrame
    speaker_differences: np.ndarray
    exact: bool


def paired_change(errors_before, n_before, errors_after, n_after, groups, *,
                  rows: Sequence | None = None, statistics: Sequence[str] | None = None,
                  weighting: str = "items", n_boot: int = 1000, n_perm: int = 1000,
                  alpha: float = 0.05, seed: int = 0) -> PairedChange:
    """Paired change (after - before) of every statistic, per row, for one set of speakers.

    Parameters
    ----------
    errors_before, n_before, errors_after, n_after : array-like (R, S) or (S,)
        Per-speaker error counts and item counts of the two encoders on the same S speakers
        (same column order), R rows (layers) sharing them.
    groups : array-like of str (S,)
        Group of each speaker.
    rows : sequence, optional
        Labels of the R rows (default ``0..R-1``).
    statistics : sequence of str, optional
        Kinds from :data:`~probekit.bias.metrics.SUMMARY_STATISTICS` and ``"group"`` (every
        group); default all.
    weighting : {"items", "speakers"}
        ``items`` (default): a group's error pools its speakers' counts (the rows are named
        ``pooled_<kind>``, ``pooled_group:<g>``); ``speakers``: each speaker's rate counts
        once (``<kind>``, ``group:<g>``). :func:`~probekit.bias.metrics.group_statistics`.
    n_boot, n_perm, alpha, seed
        Bootstrap replicates, swap draws (all ``2**S`` patterns when that is fewer), interval
        level ``1 - alpha``, and the seed of both.
    """
    Ka, Na, Kb, Nb = (np.atleast_2d(np.asarray(x, float))
                      for x in (errors_before, n_before, errors_after, n_after))
    if not (Ka.shape == Na.shape == Kb.shape == Nb.shape):
        raise BiasInputError(f"before/after arrays differ in shape: {Ka.shape}, {Na.shape}, "
                             f"{Kb.shape}, {Nb.shape}")
    groups = np.asarray(groups).astype(str)
    R, S = Ka.shape
    if groups.shape != (S,):
        raise BiasInputError(f"groups has shape {groups.shape}, expected ({S},)")
    if weighting not in WEIGHTINGS:
        raise BiasInputError(f"weighting {weighting!r}: use one of {list(WEIGHTINGS)}")
    unknown = sorted(set(statistics or ()) - set(SUMMARY_STATISTICS) - {"group"})
    if unknown:
        raise BiasInputError(f"unknown statistic(s) {unknown}: use kinds from "
                             f"{list(SUMMARY_STATISTICS)} and 'group'")
    if (Na <= 0).any() or (Nb <= 0).any():
        raise BiasInputError("every speaker needs n > 0 items before and after")
    names, codes = np.unique(groups, return_inverse=True)
    counts = np.bincount(codes, minlength=len(names))
    if counts.min() < 2:
        raise BiasInputError(f"group {names[counts.argmin()]!r} has {counts.min()} speaker; a "
                             "paired speaker bootstrap needs at least 2 per group")
    rows = list(range(R)) if rows is None else list(rows)
    rng = np.random.default_rng(seed)
    stats = lambda K, N: _stats(K, N, codes, names, weighting)  # noqa: E731
    before, after = stats(Ka, Na), stats(Kb, Nb)
    keys = [k for k in before if statistics is None or k in statistics
            or (isinstance(k, tuple) and "group" in statistics)]
    # paired permutation: swap the two encoders' counts for a random subset of speakers
    W, exact = _swap_signs(S, n_perm, rng)
    Wl = W[:, None, :]
    sKa, sNa = np.where(Wl, Kb, Ka), np.where(Wl, Nb, Na)
    sKb, sNb = np.where(Wl, Ka, Kb), np.where(Wl, Na, Nb)
    null_a, null_b = stats(sKa, sNa), stats(sKb, sNb)
    # paired bootstrap: the same speaker indices for both encoders and every row
    idx = speaker_bootstrap_indices(codes, n_boot, rng)
    boot_a = stats(Ka[:, idx].transpose(1, 0, 2), Na[:, idx].transpose(1, 0, 2))
    boot_b = stats(Kb[:, idx].transpose(1, 0, 2), Nb[:, idx].transpose(1, 0, 2))
    group_counts = dict(zip(names, counts))
    out = []
    for k in keys:
        obs = after[k] - before[k]                           # (R,)
        null = null_b[k] - null_a[k]                         # (P, R), symmetric about 0
        with np.errstate(invalid="ignore"):
            if exact:
                tol = 1e-12 * np.maximum(1.0, np.abs(obs))
                p = (np.abs(null) >= np.abs(obs) - tol).mean(0)
                p = np.where(np.isnan(obs), np.nan, p)
            else:
                p = permutation_pvalue(np.abs(obs), np.abs(null))
            with warnings.catch_warnings():                  # a gap of one group: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                sd = np.sqrt(np.nanmean(null ** 2, axis=0))  # null is centred at 0
            T = np.where(sd > 0, np.abs(obs) / sd, np.where(np.abs(obs) > 0, np.inf, 0.0))
            Tn = np.abs(null) / np.where(sd > 0, sd, np.inf)
        p_fwer = maxt_stepdown(T, Tn, exact=exact)
        reps = boot_b[k] - boot_a[k]                         # (B, R)
        # a paired change is resampled over every speaker: expand for the speakers behind it
        # (the group's for a group error, all for the summaries and gaps; the smallest group's
        # count, the convention for unpaired gaps, over-covered: 99.3 % at 95 %)
        g = k[1] if isinstance(k, tuple) else None
        n_spk = int(group_counts[g]) if g is not None else int(S)
        lo, hi = percentile_ci(reps, alpha, n_clusters=n_spk)
        name = statistic_name("group", g, weighting=weighting) if g is not None else \
            statistic_name(k, weighting=weighting)
        n_items = (Na[:, codes == list(names).index(g)].sum(1) if g is not None else Na.sum(1))
        for r in range(R):
            out.append({"row": rows[r], "statistic": name, "weighting": weighting,
                        "before": before[k][r],
                        "after": after[k][r], "change": obs[r], "ci_low": lo[r],
                        "ci_high": hi[r], "p_value": p[r], "p_fwer": p_fwer[r],
                        "n_speakers": n_spk, "n_items": int(n_items[r])})
    with np.errstate(invalid="ignore", divide="ignore"):
        diffs = Kb / Nb - Ka / Na
    return PairedChange(pd.DataFrame(out), diffs, exact)
