"""Index arrays for the speaker-cluster bootstrap and the speaker permutation test.

Both return integer arrays ``idx`` of shape (B, S) over speaker positions; a statistic is
recomputed on ``X[..., idx]`` for any per-speaker array ``X`` of shape (..., S), so thousands
of replicates are one fancy-indexing operation instead of a Python loop over DataFrames.
"""

from __future__ import annotations

import numpy as np

__all__ = ["speaker_bootstrap_indices", "speaker_permutation_indices", "percentile_ci"]


def speaker_bootstrap_indices(codes: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Cluster bootstrap stratified by group: position j of group g draws a speaker of g.

    Each replicate keeps every group's number of speakers (the design), and a drawn speaker
    brings all of its items with it.

    Returns
    -------
    numpy.ndarray of int, shape (n_boot, S)
    """
    codes = np.asarray(codes)
    idx = np.empty((n_boot, codes.size), dtype=np.int64)
    for g in np.unique(codes):
        pos = np.flatnonzero(codes == g)
        idx[:, pos] = pos[rng.integers(0, pos.size, size=(n_boot, pos.size))]
    return idx


def speaker_permutation_indices(n_speakers: int, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """Random permutations of speaker positions, shape (n_perm, S).

    Applying ``X[..., idx]`` with the group codes held fixed is the same as shuffling group
    labels across speakers while each speaker keeps all of its items.
    """
    return rng.permuted(np.broadcast_to(np.arange(n_speakers), (n_perm, n_speakers)), axis=1)


def percentile_ci(reps: np.ndarray, alpha: float = 0.05, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap replicates (NaN replicates ignored)."""
    lo, hi = np.nanquantile(reps, [alpha / 2, 1 - alpha / 2], axis=axis)
    return lo, hi
