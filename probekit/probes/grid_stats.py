"""The closed-form probes' grid from shared sufficient statistics: one pass per layer.

LDA and ridge need only :class:`~probekit.probes.linear.SufficientStats` of their training
rows, and the statistics of disjoint rows add. :func:`equal_training_sets` draws every
training set as per-speaker *prefixes* (the first ``q`` of a speaker's training rows in the
speaker's fixed random order, :func:`~probekit.probes.splits.speaker_ranks`), so the
statistics of every set of every seed are sums of per-speaker prefix statistics:

* :func:`set_statistics` walks each speaker's rows once in that order and cuts them into
  *segments* between the prefix lengths some set asks for; each segment's sums are computed
  once (float64) and every set's sums are one product with the (sets x segments) 0/1
  membership matrix. Seeds whose split gives a speaker the same training rows (always, when
  sentences are not split) share one walk; a seed that keeps other rows of the speaker (a
  sentence-disjoint split) walks them again. Where many short walks would make the
  segments cost more than the sets' own rows (:func:`_direct_is_cheaper`), each set sums
  its own rows instead. Rows are read from the layer in blocks of ``block`` rows
  (:class:`~probekit.store.rows.LayerRows` or a memory map), never the whole layer: memory
  is the sets' statistics (``sets x (d^2 + d K)`` floats), at most :data:`CHUNK_BYTES` of
  segment statistics and a few blocks.
* :func:`fit_sets` fits every set's probe from its statistics, on one thread per CPU.
* :func:`~probekit.probes.grid_scoring.stream_errors` (``grid_scoring.py``) stacks the
  coefficients of every fitted probe of a seed and scores each block of test rows once for
  all of them.

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

__all__ = ["STATS_PROBES", "uses_statistics", "set_statistics", "fit_sets"]

#: Registered probes fitted from shared statistics by the grid.
STATS_PROBES = ("lda", "ridge")
#: Rows per block read from the layer (float64: ``block x d x 8`` bytes).
BLOCK = 8192
#: Bytes of stacked per-segment statistics added to the sets' at a time.
CHUNK_BYTES = 1 << 30


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


def layer_reader(X):
    """``read(rows)`` -> the rows (sorted indices) of ``X`` in its stored dtype: a
    :class:`~probekit.store.rows.LayerRows` reads them from disk (the file's pages stay in
    the page cache, not in this process); a read-only memory map drops its pages after each
    read (:func:`_release`); an array is indexed."""
    from probekit.store.rows import LayerRows

    if isinstance(X, LayerRows):
        return X.take
    where = _mapping(X)

    def read(rows):
        out = X[rows]
        _release(X, where, rows)
        return out
    return read


def _walks(meta: pd.DataFrame, train: dict, sets: dict):
    """Per speaker and distinct set of training rows (a *walk*): the rows the sets take, in
    the speaker's fixed order, cut into *segments* between consecutive prefix lengths, and for
    each segment the sets that take it (a set with quota ``q`` takes every segment that ends
    at or before ``q``). Returns ``[(rows, [(start, stop, [set index, ...]), ...]), ...]``."""
    keys = list(sets)
    rank = speaker_ranks(meta)
    speakers = meta["speaker"].astype(str).to_numpy()
    wants: dict[str, dict] = {}  # speaker -> seed -> [(q, set index)]
    for i, key in enumerate(keys):
        seed, ts = sets[key]
        if ts.quotas is None:
            raise ValueError(f"training set {ts.name!r} (seed {seed}) was not drawn as "
                             "per-speaker prefixes (no quotas): fit it directly")
        for spk, q in ts.quotas.items():
            wants.setdefault(spk, {}).setdefault(seed, []).append((int(q), i))
    in_train = {s: np.zeros(len(meta), dtype=bool) for s in train}
    for s, rows in train.items():
        in_train[s][rows] = True
    out = []
    for spk, idx in meta.groupby(speakers, sort=True).indices.items():
        if spk not in wants:
            continue
        order = idx[np.argsort(rank[idx], kind="stable")]
        walks: dict[bytes, tuple[np.ndarray, list]] = {}
        for seed, asks in wants[spk].items():
            mask = in_train[seed][order]
            walks.setdefault(mask.tobytes(), (order[mask], []))[1].extend(asks)
        for eligible, asks in walks.values():
            cuts = sorted({q for q, _ in asks})
            if cuts[-1] > len(eligible):
                raise ValueError(f"speaker {spk}: a set takes {cuts[-1]} rows, the split has "
                                 f"{len(eligible)}")
            out.append((eligible[:cuts[-1]], [(lo, hi, [i for q, i in asks if q >= hi])
                                              for lo, hi in zip([0] + cuts[:-1], cuts)]))
    return out


def set_statistics(X, y: np.ndarray, meta: pd.DataFrame, train: dict, sets: dict,
                   block: int = BLOCK) -> dict:
    """Statistics of training sets drawn by :func:`equal_training_sets`.

    Parameters
    ----------
    X : array (rows, d) or LayerRows
        The layer, read in blocks of at most ``block`` rows.
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
    d, k, keys = X.shape[1], len(classes), list(sets)
    read = layer_reader(X)
    walks = _walks(meta, train, sets)
    n_sets = len(keys)
    cc = np.zeros((n_sets, k))  # class counts; n and sum_x follow from them (_pack)
    sxx, sxy = np.empty((n_sets, d * d)), np.empty((n_sets, d * k))
    if _direct_is_cheaper(walks, sets):
        by_seed: dict = {}
        for i, key in enumerate(keys):
            by_seed.setdefault(sets[key][0], []).append(i)
        for members in by_seed.values():
            # a seed's sets are read together (their union is dense enough to read in spans),
            # UNION_BLOCKS blocks at a time
            rows_of = [np.sort(sets[keys[i]][1].rows) for i in members]
            for g0, g1 in _groups([len(r) for r in rows_of], UNION_BLOCKS * block):
                union = np.unique(np.concatenate(rows_of[g0:g1]))
                held = _Held(union, read(union))
                for i, rows in zip(members[g0:g1], rows_of[g0:g1]):
                    for b0 in range(0, len(rows), block):
                        r = rows[b0:b0 + block]
                        _add_rows(np.asarray(held.take(r), dtype=np.float64), codes[r], k,
                                  sxx[i], sxy[i], b0 > 0)
                    cc[i] = np.bincount(codes[rows], minlength=k)
        return _pack(keys, sets, classes, sxx, cc, sxy, d, k)
    # segments' statistics are stacked, CHUNK_BYTES at a time (whole walks), and added to
    # the sets' by one product with the (sets x segments) 0/1 membership matrix
    # (memory-bound: few, large chunks; on a study-size grid, one)
    per_chunk = max(1, CHUNK_BYTES // (8 * d * d))
    w0 = 0
    while w0 < len(walks):
        w1, m = w0, 0
        while w1 < len(walks) and (m == 0 or m + len(walks[w1][1]) <= per_chunk):
            m += len(walks[w1][1])
            w1 += 1
        A = np.zeros((n_sets, m))
        g_xx, g_xy = np.empty((m, d * d)), np.empty((m, d * k))
        touched = np.zeros(m, dtype=bool)
        j0 = 0
        for rows, segs in walks[w0:w1]:
            for a in range(0, len(rows), block):  # the walk's rows, a block at a time
                part = rows[a:a + block]
                srt = np.argsort(part)
                data = np.empty((len(part), d), dtype=X.dtype)
                data[srt] = read(part[srt])  # read in row order, kept in walk order
                for j, (lo, hi, members) in enumerate(segs):
                    p0, p1 = max(lo, a) - a, min(hi, a + len(part)) - a
                    if p1 <= p0:
                        continue
                    r, Xb = part[p0:p1], np.asarray(data[p0:p1], dtype=np.float64)
                    _add_rows(Xb, codes[r], k, g_xx[j0 + j], g_xy[j0 + j], touched[j0 + j])
                    touched[j0 + j] = True
                    A[members, j0 + j] = 1.0
                    cc[members] += np.bincount(codes[r], minlength=k)
            j0 += len(segs)
        g_xx[~touched], g_xy[~touched] = 0.0, 0.0
        if w0:
            sxx += A @ g_xx
            sxy += A @ g_xy
        else:
            np.matmul(A, g_xx, out=sxx)
            np.matmul(A, g_xy, out=sxy)
        w0 = w1
    return _pack(keys, sets, classes, sxx, cc, sxy, d, k)


#: The cost of one segment's d x d sums beyond its rows' multiply-adds, in rows: a small
#: product's overhead and the d x d write (measured ~300 rows at d = 384 and d = 768).
SEGMENT_ROWS = 300


def _direct_is_cheaper(walks, sets) -> bool:
    """Whether summing each set's own rows beats shared segments, in multiply-adds of d x d
    sums (rows/2 each: symmetric). Shared: every walked row once, :data:`SEGMENT_ROWS` per
    segment and the (sets x segments) membership product; direct: every set's rows.
    Segments pay where sets overlap in large runs of rows (a speaker-disjoint split: the
    same walk for every seed); with many short walks (a sentence-disjoint split, a few
    rows per speaker per seed) the sets' own rows cost less."""
    segments = sum(len(segs) for _, segs in walks)
    shared = sum(len(rows) for rows, _ in walks) / 2 + segments * (SEGMENT_ROWS + len(sets))
    direct = sum(len(ts.rows) for _, ts in sets.values()) / 2
    return direct < shared


#: Blocks of rows held at once when a seed's sets are summed directly.
UNION_BLOCKS = 4


def _groups(sizes, limit):
    """Consecutive ``[start, stop)`` groups of items whose sizes sum to at most ``limit``
    (an item larger than ``limit`` alone)."""
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > limit:
            yield start, i
            start, total = i, 0
        total += size
    if sizes:
        yield start, len(sizes)


class _Held:
    """Rows ``union`` (sorted) of the layer, held in memory: ``take(rows)`` for a subset."""

    def __init__(self, union, data):
        self.union, self.data = union, data

    def take(self, rows):
        return self.data[np.searchsorted(self.union, rows)]


def _add_rows(Xb, c, k, gxx, gxy, add: bool) -> None:
    """Sums of rows ``Xb`` (float64) with class codes ``c`` into flat ``gxx`` (d*d) and
    ``gxy`` (d*k): added, or written in place (no zeroing of the d x d output first)."""
    d = Xb.shape[1]
    onehot = np.zeros((len(c), k))
    onehot[np.arange(len(c)), c] = 1.0
    if add:
        gxx.reshape(d, d)[...] += Xb.T @ Xb
        gxy.reshape(d, k)[...] += Xb.T @ onehot
    else:
        np.matmul(Xb.T, Xb, out=gxx.reshape(d, d))
        np.matmul(Xb.T, onehot, out=gxy.reshape(d, k))


def _pack(keys, sets, classes, sxx, cc, sxy, d, k) -> dict:
    """SufficientStats per set; ``n`` is the class counts' total and ``sum_x`` the class
    sums' (every row has one class), checked against the set's size."""
    n = cc.sum(1).astype(np.int64)
    sx = sxy.reshape(len(keys), d, k).sum(2)
    out = {}
    for i, key in enumerate(keys):
        seed, ts = sets[key]
        if n[i] != len(ts.rows):
            raise ValueError(f"training set {ts.name!r} (seed {seed}): statistics of "
                             f"{n[i]} rows for a set of {len(ts.rows)}")
        out[key] = SufficientStats(classes, int(n[i]), sx[i], sxx[i].reshape(d, d), cc[i],
                                   sxy[i].reshape(d, k))
    return out


def fit_sets(stats: dict, make) -> dict:
    """``make(key)`` -> unfitted LDA/ridge probe, fitted from ``stats[key]``.

    The fits run on one thread per CPU (at most 8), each solve on one BLAS thread
    (:func:`~probekit.probes._base.spd_solve`): a d <= ~1000 solve does not use two cores
    well, two solves at once do."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from probekit.probes._base import blas_controller

    keys = list(stats)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = max(1, min(8, cpus or 1, len(keys)))  # sched_getaffinity: Linux only
    # one limit around the pool: the solves' own (nested) limits then all restore 1
    with blas_controller().limit(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        fitted = list(pool.map(lambda k: make(k).fit_from_stats(stats[k]), keys))
    return dict(zip(keys, fitted))
