"""Reading a layer's rows in pieces, without materialising the layer (issue 23 item 2).

:meth:`EmbeddingStore.read <probekit.store.EmbeddingStore.read>` returns one array of the
whole layer (several shards are concatenated into memory). At real-study size (millions of
frames x 1,024 dimensions) that is more memory than a machine has, so the grid, the CTC probe
and the analysis read through :class:`LayerRows` instead (:meth:`EmbeddingStore.rows`):

* :meth:`LayerRows.block` reads rows ``[start, stop)`` (crossing shard boundaries);
* :meth:`LayerRows.take` reads any rows, in the order given (one read per contiguous run);
* :meth:`LayerRows.chunks` iterates over the layer in blocks of at most ``chunk_rows`` rows.

Each read copies only the rows asked for, with ``readinto`` at the row's byte offset in the
shard's ``.npy`` file. Unlike touching a memory map, this leaves the file's pages in the
operating system's page cache, not in the process's resident memory: a pass over a layer
costs the process one block, whatever the layer's size.

:class:`FrameSequences` is the ``frames`` pooling cut per utterance
(:meth:`EmbeddingStore.read_sequences <probekit.store.EmbeddingStore.read_sequences>`): a
read-only sequence whose items are read from disk when indexed, so a CTC probe trained on
it holds one batch of utterances at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probekit.errors import StoreError

__all__ = ["LayerRows", "ArrayRows", "FrameSequences", "DEFAULT_CHUNK_ROWS"]

#: Rows per block of :meth:`LayerRows.chunks` by default (about 64 MB at 1,024 float32 dims).
DEFAULT_CHUNK_ROWS = 16384


@dataclass(frozen=True)
class _Shard:
    path: Path
    offset: int  # byte offset of row 0 in the .npy file
    start: int   # global index of the shard's first row
    rows: int


class LayerRows:
    """The rows of one layer and pooling across every shard, read on demand.

    Build with :meth:`EmbeddingStore.rows`. ``shape``, ``dtype`` and ``len()`` describe the
    whole layer; every read returns a new read-only C-contiguous array in the stored dtype.
    """

    def __init__(self, shards: Sequence[tuple[Path, int, int]], hidden: int, dtype):
        parts, start = [], 0
        for path, offset, rows in shards:
            parts.append(_Shard(Path(path), int(offset), start, int(rows)))
            start += int(rows)
        self._shards = parts
        self._starts = np.array([s.start for s in parts] + [start], dtype=np.int64)
        self.dtype = np.dtype(dtype)
        self.shape = (start, int(hidden))

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the whole layer (what :meth:`EmbeddingStore.read` would hold)."""
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"LayerRows(shape={self.shape}, dtype={self.dtype}, shards={len(self._shards)})"

    def _read_into(self, out: np.ndarray, start: int, stop: int, files=None) -> None:
        """Rows ``[start, stop)`` into ``out`` (C-contiguous, ``stop - start`` rows);
        ``files`` (a dict) keeps shard files open across calls (the caller closes them)."""
        row_bytes = self.shape[1] * self.dtype.itemsize
        k = int(np.searchsorted(self._starts, start, side="right")) - 1
        pos = 0
        while start < stop:
            sh = self._shards[k]
            end = min(stop, sh.start + sh.rows)
            if end > start:
                view = out[pos:pos + end - start]
                f = files.get(k) if files is not None else None
                if f is None:
                    f = open(sh.path, "rb")
                    if files is not None:
                        files[k] = f
                try:
                    f.seek(sh.offset + (start - sh.start) * row_bytes)
                    got = f.readinto(memoryview(view).cast("B"))
                finally:
                    if files is None:
                        f.close()
                if got != view.nbytes:
                    raise StoreError(f"{sh.path}: read {got} of {view.nbytes} bytes at row "
                                     f"{start - sh.start} (truncated shard: run `probekit "
                                     "store verify`, then extract again)")
                pos += end - start
                start = end
            k += 1

    def block(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as one array (read-only)."""
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= self.shape[0]:
            raise StoreError(f"rows [{start}, {stop}) are outside the layer's "
                             f"{self.shape[0]} rows")
        out = np.empty((stop - start, self.shape[1]), dtype=self.dtype)
        self._read_into(out, start, stop)
        out.flags.writeable = False
        return out

    def take(self, rows) -> np.ndarray:
        """The rows at ``rows`` (integer indices, any order, repeats allowed), in that order."""
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.shape[0]):
            bad = idx[(idx < 0) | (idx >= self.shape[0])][0]
            raise StoreError(f"row {int(bad)} is outside the layer's {self.shape[0]} rows")
        # Per window of DEFAULT_CHUNK_ROWS rows: where the rows asked for are dense (1 in 8
        # or more), one read of their span and a selection; else one read per run of
        # consecutive rows. Repeats and order by indexing at the end.
        uniq, inv = np.unique(idx, return_inverse=True)
        buf = np.empty((uniq.size, self.shape[1]), dtype=self.dtype)
        files: dict = {}
        try:
            windows = np.flatnonzero(np.diff(uniq // DEFAULT_CHUNK_ROWS)) + 1
            for part in np.split(np.arange(uniq.size), windows):
                if not part.size:
                    continue
                u = uniq[part]
                lo, hi = int(u[0]), int(u[-1]) + 1
                if 8 * part.size >= hi - lo:
                    span = np.empty((hi - lo, self.shape[1]), dtype=self.dtype)
                    self._read_into(span, lo, hi, files)
                    buf[part] = span[u - lo]
                    del span
                    continue
                for run in np.split(part, np.flatnonzero(np.diff(u) != 1) + 1):
                    self._read_into(buf[run[0]:run[-1] + 1], int(uniq[run[0]]),
                                    int(uniq[run[-1]]) + 1, files)
        finally:
            for f in files.values():
                f.close()
        out = buf if uniq.size == idx.size and (np.diff(idx) > 0).all() else buf[inv.reshape(-1)]
        out.flags.writeable = False
        return out

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS, rows=None):
        """Blocks of at most ``chunk_rows`` rows: yields ``(index, X)`` with ``index`` the
        global row indices of ``X``'s rows. ``rows`` (optional, integer indices) restricts
        the pass to those rows, in that order."""
        if int(chunk_rows) < 1:
            raise StoreError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        if rows is None:
            for a in range(0, self.shape[0], int(chunk_rows)):
                b = min(a + int(chunk_rows), self.shape[0])
                yield np.arange(a, b), self.block(a, b)
            return
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        for a in range(0, idx.size, int(chunk_rows)):
            part = idx[a:a + int(chunk_rows)]
            yield part, self.take(part)


class ArrayRows(LayerRows):
    """:class:`LayerRows`' interface over an array already in memory (a test double's
    layer, a simulation): the same reads, copied from ``X``."""

    def __init__(self, X):
        self._X = np.asarray(X)
        if self._X.ndim != 2:
            raise StoreError(f"expected a (rows, hidden) array, got shape {self._X.shape}")
        self._shards = []
        self.dtype = self._X.dtype
        self.shape = self._X.shape

    def __repr__(self) -> str:
        return f"ArrayRows(shape={self.shape}, dtype={self.dtype})"

    def _read_into(self, out: np.ndarray, start: int, stop: int, files=None) -> None:
        out[...] = self._X[start:stop]


class FrameSequences(Sequence):
    """Per-utterance frame sequences read on demand (see the module docstring).

    ``seqs[i]`` is utterance ``i``'s ``(n_frames_i, hidden)`` array, read from disk;
    ``seqs[a:b]``, ``seqs[[i, j, ...]]`` or ``seqs[bool_mask]`` is another
    :class:`FrameSequences` over those utterances (nothing is read). ``np.concatenate(seqs)``
    reads every utterance, as a list would.
    """

    def __init__(self, rows: LayerRows, offsets, lengths, ids=None):
        self.rows = rows
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.ids = None if ids is None else np.asarray(ids, dtype=object)

    def __len__(self) -> int:
        return int(self.offsets.size)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            j = int(i) + (len(self) if int(i) < 0 else 0)
            if not 0 <= j < len(self):
                raise IndexError(f"utterance {int(i)} out of range for {len(self)} sequences")
            off = int(self.offsets[j])
            return self.rows.block(off, off + int(self.lengths[j]))
        sel = np.arange(len(self))[i] if isinstance(i, slice) else np.asarray(i)
        if sel.dtype == bool:
            sel = np.flatnonzero(sel)
        sel = sel.astype(np.int64)
        return FrameSequences(self.rows, self.offsets[sel], self.lengths[sel],
                              None if self.ids is None else self.ids[sel])

    def __iter__(self):
        for j in range(len(self)):
            yield self[j]

    @property
    def n_frames(self) -> int:
        """Frames of every utterance together."""
        return int(self.lengths.sum())

    def __repr__(self) -> str:
        return (f"FrameSequences({len(self)} utterances, {self.n_frames} frames, "
                f"hidden={self.rows.shape[1]}, dtype={self.rows.dtype})")
