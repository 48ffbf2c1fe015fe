"""The closed-form probes' grid from shared sufficient statistics: one pass per layer.

LDA and ridge need only :class:`~probekit.probes.linear.SufficientStats` of their training
rows, and the statistics of disjoint rows add. :func:`equal_training_sets` draws every
training set as per-speaker *prefixes* (the first ``q`` of a speaker's training rows in the
speaker's fixed random order, :func:`~probekit.probes.splits.speaker_ranks`), so the
statistics of every set of every seed are sums of per-speaker prefix statistics:

* :func:`set_statistics` walks each speaker's rows once in that order, in segments between
  the prefix lengths some set asks for, accumulating in float64; at each length the running
  prefix is added to every set that takes that many rows of the speaker. Seeds whose split
  gives a speaker the same training rows (always, when sentences are not split) share one
  walk; a seed that keeps other rows of the speaker (a sentence-disjoint split) walks them
  again. Every row is read from the (memory-mapped) layer in blocks of ``block`` rows, never
  the whole layer: memory is the sets' statistics (``sets x (d^2 + d K)`` floats) plus one
  block.
* :func:`stream_errors` stacks the coefficients of every fitted probe of a seed and scores
  each block of test rows once for all of them.

The fits equal direct fits on the same rows (:meth:`LDAProbe.fit` / :meth:`LinearProbe.fit`):
the same statistics up to float64 summation order (coefficients agree to ~1e-12) and the
same predictions (``tests/probes/test_grid_stats.py``). Other probes (logistic, MLP, CTC,
estimator instances) keep the per-cell path of :func:`~probekit.probes.grid.run_grid`.
"""

from __future__ import annotations

import mmap

import numpy as np
import pandas as pd

from probekit.probes.linear import SufficientStats
from probekit.probes.splits import speaker_ranks

__all__ = ["STATS_PROBES", "uses_statistics", "set_statistics", "fit_sets", "stream_errors"]

#: Registered probes fitted from shared statistics by the grid.
STATS_PROBES = ("lda", "ridge")
#: Rows per block read from the layer (float64: ``block x d x 8`` bytes).
BLOCK = 8192


def _mapping(X):
    """``(mmap, offset of X's first byte in it)`` when ``X`` views a read-only memory map
    (what :meth:`EmbeddingStore.read` returns for one shard), else None."""
    base = X
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    # only read-only views: pages of a writable (copy-on-write) map may hold changes
    if base is None or not hasattr(base, "madvise") or X.flags.writeable or not X.flags.c_contiguous:
        return None
    start = np.frombuffer(base, dtype=np.uint8).__array_interface__["data"][0]
    return base, X.__array_interface__["data"][0] - start


def _release(X, where, rows: np.ndarray) -> None:
    """Let the kernel drop this process's mapped pages of ``rows`` (still in the page cache):
    a pass over a memory-mapped layer then holds one block of it, not all it has read."""
    if where is None or not len(rows):
        return
    mm, off = where
    row = X.strides[0]
    lo = (off + int(rows.min()) * row) // mmap.PAGESIZE * mmap.PAGESIZE
    hi = min(off + (int(rows.max()) + 1) * row, len(mm))
    mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def uses_statistics(probes) -> bool:
    """Whether every probe is a registered closed-form one (:data:`STATS_PROBES`)."""
    return bool(probes) and all(isinstance(p, str) and p in STATS_PROBES for p in probes)


class _Acc:
    """Running float64 sums of one row set (the fields of :class:`SufficientStats`)."""

    __slots__ = ("n", "sx", "sxx", "cc", "sxy")

    def __init__(self, d: int, k: int):
        self.n, self.sx, self.sxx = 0, np.zeros(d), np.zeros((d, d))
        self.cc, self.sxy = np.zeros(k), np.zeros((d, k))

    def add_rows(self, X, rows: np.ndarray, codes: np.ndarray, block: int, where=None) -> None:
        k = len(self.cc)
        for start in range(0, len(rows), block):
            r = np.sort(rows[start:start + block])
            Xb = np.asarray(X[r], dtype=np.float64)
            _release(X, where, r)
            c = codes[r]
            onehot = np.zeros((len(r), k))
            onehot[np.arange(len(r)), c] = 1.0
            self.n += len(r)
            self.sx += Xb.sum(0)
            self.sxx += Xb.T @ Xb
            self.cc += onehot.sum(0)
            self.sxy += Xb.T @ onehot

    def add(self, other: "_Acc") -> None:
        self.n += other.n
        self.sx += other.sx
        self.sxx += other.sxx
        self.cc += other.cc
        self.sxy += other.sxy

    def stats(self, classes: np.ndarray) -> SufficientStats:
        return SufficientStats(classes, self.n, self.sx, self.sxx, self.cc, self.sxy)


def set_statistics(X, y: np.ndarray, meta: pd.DataFrame, train: dict, sets: dict,
                   block: int = BLOCK) -> dict:
    """Statistics of training sets drawn by :func:`equal_training_sets`.

    Parameters
    ----------
    X : array (rows, d)
        The layer (a memory map is read in blocks of ``block`` rows).
    y : array (rows,)
        Labels; the statistics' ``classes`` are all of them (absent ones count 0).
    meta : DataFrame with ``speaker``
    train : dict seed -> training rows of the seed's split
    sets : dict key -> (seed, TrainingSet) for the sets wanted

    Returns
    -------
    dict key -> SufficientStats
    """
    classes, codes = np.unique(y, return_inverse=True)
    d, k = X.shape[1], len(classes)
    speakers = meta["speaker"].astype(str).to_numpy()
    rank = speaker_ranks(meta)
    acc = {key: _Acc(d, k) for key in sets}
    where = _mapping(X)
    # speaker -> seed -> [(q, key)]
    wants: dict[str, dict] = {}
    for key, (seed, ts) in sets.items():
        if ts.quotas is None:
            raise ValueError(f"training set {ts.name!r} (seed {seed}) was not drawn as "
                             "per-speaker prefixes (no quotas): fit it directly")
        for spk, q in ts.quotas.items():
            wants.setdefault(spk, {}).setdefault(seed, []).append((int(q), key))
    in_train = {s: np.zeros(len(meta), dtype=bool) for s in train}
    for s, rows in train.items():
        in_train[s][rows] = True
    for spk, idx in meta.groupby(speakers, sort=True).indices.items():
        if spk not in wants:
            continue
        order = idx[np.argsort(rank[idx], kind="stable")]
        walks: dict[bytes, tuple[np.ndarray, list]] = {}
        for seed, asks in wants[spk].items():
            mask = in_train[seed][order]
            walks.setdefault(mask.tobytes(), (order[mask], []))[1].extend(asks)
        for eligible, asks in walks.values():
            run, done = _Acc(d, k), 0
            for q in sorted({q for q, _ in asks}):
                if q > len(eligible):
                    raise ValueError(f"speaker {spk}: a set takes {q} rows, the split has "
                                     f"{len(eligible)}")
                run.add_rows(X, eligible[done:q], codes, block, where)
                done = q
                for _, key in (a for a in asks if a[0] == q):
                    acc[key].add(run)
    out = {}
    for key, (seed, ts) in sets.items():
        if acc[key].n != len(ts.rows):
            raise ValueError(f"training set {ts.name!r} (seed {seed}): statistics of "
                             f"{acc[key].n} rows for a set of {len(ts.rows)}")
        out[key] = acc[key].stats(classes)
    return out


def fit_sets(stats: dict, make) -> dict:
    """``make(key)`` -> unfitted LDA/ridge probe, fitted from ``stats[key]``."""
    return {key: make(key).fit_from_stats(s) for key, s in stats.items()}


def stream_errors(X, y: np.ndarray, tests: dict, models: dict, block: int = BLOCK) -> dict:
    """Test errors of fitted linear probes, one pass over the test rows.

    ``tests``: seed -> sorted test rows; ``models``: key -> (seed, fitted probe with
    ``coef_``, ``intercept_``, ``classes_``). Each block of rows (the union of every seed's)
    is read once and scored by the stacked coefficients of every probe of each seed.
    Returns key -> boolean array over ``tests[seed]`` (True = wrong).
    """
    by_seed: dict = {}
    for key, (seed, est) in models.items():
        by_seed.setdefault(seed, []).append((key, est))
    stacked = {}
    for seed, items in by_seed.items():
        W = np.concatenate([est.coef_.T for _, est in items], axis=1)
        b = np.concatenate([est.intercept_ for _, est in items])
        cuts = np.cumsum([0] + [len(est.classes_) for _, est in items])
        stacked[seed] = (W, b, cuts, items)
    wrong = {key: np.zeros(len(tests[seed]), dtype=bool) for key, (seed, _) in models.items()}
    union = np.unique(np.concatenate([tests[s] for s in by_seed])) if by_seed else []
    where = _mapping(X)
    for start in range(0, len(union), block):
        rows = union[start:start + block]
        Xb = np.asarray(X[rows], dtype=np.float64)
        _release(X, where, rows)
        for seed, (W, b, cuts, items) in stacked.items():
            t = tests[seed]
            pos = np.searchsorted(t, rows).clip(0, max(len(t) - 1, 0))
            hit = t[pos] == rows
            if not hit.any():
                continue
            scores = Xb[hit] @ W + b
            truth = y[rows[hit]]
            for j, (key, est) in enumerate(items):
                pred = est.classes_[np.argmax(scores[:, cuts[j]:cuts[j + 1]], axis=1)]
                wrong[key][pos[hit]] = pred != truth
    return wrong
