"""The on-disk embedding store: layout, fingerprint, and reading.

Layout of a store folder::

    fingerprint.json              what the store was computed from; written before any shard
    shards/00000/                 one folder per shard, renamed into place when complete
        <layer>.<pooling>.npy     (rows, hidden) float16/float32, e.g. ``block3.phone.npy``
        <pooling>.csv             metadata: one row per array row (shared by all layers)
    store.json                    the index; written last (its presence means: complete)

Rows of a shard are in corpus order. ``utterance`` rows are utterances, ``phone`` rows are
aligned phones, ``frames`` rows are encoder frames with ``offset``/``n_frames`` per utterance
in ``frames.csv``. Arrays are opened memory-mapped and files are per layer, so reading one
layer never touches another layer's files.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from probekit.errors import StoreError
from probekit.store.integrity import SHARDS_DIR, check_sizes, read_index
from probekit.store.shard_files import _check_rows, _load_array, _read_meta

__all__ = ["EmbeddingStore", "POOLINGS", "FINGERPRINT_NAME", "INDEX_NAME", "SHARDS_DIR",
           "corpus_hash", "shard_name", "write_json_atomic", "fingerprint_diff", "fingerprint_key"]

#: Pooling names: per utterance, per aligned phone, raw frames.
POOLINGS = ("utterance", "phone", "frames")
FINGERPRINT_NAME = "fingerprint.json"
INDEX_NAME = "store.json"
#: Bump when the pooling rule or file layout changes (part of the fingerprint).
FORMAT_VERSION = 1



def shard_name(index: int) -> str:
    return f"{index:05d}"


def corpus_hash(corpus) -> str:
    """SHA-256 (16 hex digits) of the corpus's manifest records in order.

    Audio paths are relative to the corpus root, so moving a corpus folder keeps its hash;
    in-memory audio is hashed by its samples.
    """
    h = hashlib.sha256()
    for u in corpus:
        if u.audio.path is None:
            d = u.replace(audio=type(u.audio)(path="<memory>")).to_dict()
            h.update(np.ascontiguousarray(u.audio.array).tobytes())
            d["audio"]["sample_rate"] = u.audio.sample_rate
        else:
            d = u.to_dict()
        h.update(json.dumps(d, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader sees the old file or the whole new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def add_intersection_column(meta, attribute: str, attributes) -> str:
    """Add the ``group:a*b`` column of an intersectional attribute to store metadata in place
    and return its name; a missing part or a group with fewer than
    :data:`~probekit.corpus.model.MIN_INTERSECTION_SPEAKERS` speakers is a StoreError."""
    from probekit.corpus.model import (INTERSECTION_SEP, MIN_INTERSECTION_SPEAKERS,
                                       intersection_parts)

    parts = intersection_parts(attribute)
    missing = [a for a in parts if a not in attributes]
    if missing:
        raise StoreError(f"intersection {attribute!r}: the store's corpus has no attribute "
                         f"{missing}; attributes: {list(attributes)}")
    col = f"group:{attribute}"
    meta[col] = meta[[f"group:{a}" for a in parts]].astype(str).agg(INTERSECTION_SEP.join, axis=1)
    n = meta.groupby(col)["speaker"].nunique()
    small = n[n < MIN_INTERSECTION_SPEAKERS]
    if len(small):
        raise StoreError(
            f"intersection {attribute!r} has group(s) with fewer than "
            f"{MIN_INTERSECTION_SPEAKERS} speakers: "
            + ", ".join(f"{g} ({k})" for g, k in small.items())
            + f"; each intersectional group needs at least {MIN_INTERSECTION_SPEAKERS} speakers "
              "(half are held out, and a speaker-level interval needs two on each side)")
    return col


def fingerprint_key(fp: dict) -> str:
    """12 hex digits of the fingerprint's hash, ignoring the probekit version (a new release
    that computes the same embeddings keeps its results)."""
    import hashlib

    d = {k: v for k, v in fp.items() if k != "probekit"}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def fingerprint_diff(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two fingerprints (empty when equal)."""
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            out.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return out


@dataclass(frozen=True)
class EmbeddingStore:
    """A finished embedding store (see the module docstring for the layout).

    Open with :meth:`open`; :func:`probekit.store.extract` returns one too.

    Attributes
    ----------
    root : Path
    index : dict
        The parsed ``store.json``: ``layers`` (names), ``hidden_size``, ``poolings``,
        ``dtype``, ``frame_shift`` (seconds), ``shards`` (name and rows per pooling),
        ``rows`` (totals per pooling) and ``fingerprint``.
    """

    root: Path
    index: dict

    @classmethod
    def open(cls, root: str | os.PathLike) -> "EmbeddingStore":
        root = Path(root)
        path = root / INDEX_NAME
        if not path.exists():
            hint = (" (extraction has not finished: rerun it to resume)"
                    if (root / FINGERPRINT_NAME).exists() else "")
            raise StoreError(f"{root} is not a finished embedding store: no {INDEX_NAME}{hint}")
        index = read_index(path)  # its schema: StoreError naming the key
        check_sizes(root, index)  # one stat per file: a truncated or replaced shard is refused
        return cls(root, index)

    # -- description ------------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        return list(self.index["layers"])

    @property
    def poolings(self) -> list[str]:
        return list(self.index["poolings"])

    @property
    def frame_shift(self) -> float:
        """Seconds between frames of the ``frames`` pooling."""
        return float(self.index["frame_shift"])

    @property
    def fingerprint(self) -> dict:
        return dict(self.index["fingerprint"])

    @property
    def key(self) -> str:
        """Short key of the fingerprint (:func:`fingerprint_key`): the results table's ``store``."""
        return fingerprint_key(self.fingerprint)

    def size_bytes(self) -> int:
        """Bytes on disk of every file in the store."""
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def layer_name(self, layer: int | str) -> str:
        """The stored layer name for a name or an index into the *encoder's* layers."""
        names = self.layers
        all_names = self.index["encoder_layer_names"]
        valid = (f"layers are indices {-len(all_names)}..{len(all_names) - 1} into the encoder's "
                 f"layers {all_names}, or stored layers {names}")
        if isinstance(layer, str) and not layer.strip().lstrip("-").isdigit():
            if layer.strip() not in names:
                raise StoreError(f"layer {layer!r} is not in the store; {valid}")
            return layer.strip()
        i = int(layer)
        if not -len(all_names) <= i < len(all_names):
            raise StoreError(f"layer index {i} is out of range; {valid}")
        if all_names[i] not in names:
            raise StoreError(f"layer {i} ({all_names[i]!r}) is not in the store; "
                             f"stored layers: {names}")
        return all_names[i]

    def _check_pooling(self, pooling: str) -> None:
        if pooling not in self.poolings:
            raise StoreError(f"pooling {pooling!r} was not extracted; stored: {self.poolings}")

    # -- reading ----------------------------------------------------------------------------
    def shard_paths(self) -> list[Path]:
        return [self.root / SHARDS_DIR / s["name"] for s in self.index["shards"]]

    def _shards(self, layer: int | str, pooling: str):
        """Each shard's checked array (memory-mapped, nothing read) and the metadata of all
        shards with global ``row`` (and, for ``frames``, ``offset``)."""
        import pandas as pd

        name = self.layer_name(layer)
        self._check_pooling(pooling)
        out, metas, offset, frame_offset = [], [], 0, 0
        for info, shard in zip(self.index["shards"], self.shard_paths()):
            path = shard / f"{name}.{pooling}.npy"
            X = _load_array(path)
            if X.shape[1] != self.index["hidden_size"]:
                raise StoreError(f"{path} has {X.shape[1]} columns; the store's hidden "
                                 f"size is {self.index['hidden_size']} (damaged store: extract "
                                 "it again)")
            meta = _read_meta(shard / f"{pooling}.csv", pooling)
            _check_rows(info, pooling, path, X.shape[0], shard / f"{pooling}.csv", len(meta))
            meta["row"] += offset
            if pooling == "frames":
                meta["offset"] += frame_offset
                frame_offset += X.shape[0]
            offset += len(meta)
            metas.append(meta)
            out.append((path, X))
        return out, pd.concat(metas, ignore_index=True)

    def read(self, layer: int | str, pooling: str = "utterance"):
        """Embeddings and metadata of one layer and pooling.

        The whole layer in one array: for a store of several shards, or any pass over a large
        layer, read in pieces with :meth:`rows` instead (bounded memory).

        Parameters
        ----------
        layer : int or str
            Encoder layer index (0 = ``"conv"``) or name (``"block3"``).
        pooling : ``"utterance"``, ``"phone"`` or ``"frames"``

        Returns
        -------
        X : numpy.ndarray, shape (rows, hidden_size)
            Always a plain, read-only ``numpy.ndarray`` in the stored dtype, whatever the
            number of shards: with one shard a view of the memory-mapped file (no copy), with
            several the shards concatenated (only this layer is read).
        meta : pandas.DataFrame
            One row per row of ``X``; ``row`` is the global row index. ``frames`` metadata
            has one row per utterance with ``offset`` and ``n_frames`` into ``X``.
        """
        shards, meta = self._shards(layer, pooling)
        arrays = [X for _, X in shards]
        # np.asarray drops the np.memmap subclass (the view keeps the mapping): one type,
        # and one writeability, for a store of one shard or many.
        X = np.asarray(arrays[0]) if len(arrays) == 1 else np.concatenate(arrays, axis=0)
        X.flags.writeable = False
        return X, meta

    def rows(self, layer: int | str, pooling: str = "utterance"):
        """One layer's rows to read in pieces, and its metadata: nothing of the array is read.

        Returns
        -------
        rows : :class:`~probekit.store.rows.LayerRows`
            ``rows.block(a, b)``, ``rows.take(index)``, ``rows.chunks(n)``: arrays of just
            those rows (stored dtype), read from the shard files; ``rows.shape`` is
            :meth:`read`'s ``X.shape``. Memory: the rows asked for, whatever the layer's size.
        meta : pandas.DataFrame
            As :meth:`read`'s.
        """
        from probekit.store.rows import LayerRows

        shards, meta = self._shards(layer, pooling)
        return LayerRows([(p, X.offset, X.shape[0]) for p, X in shards],
                         self.index["hidden_size"], shards[0][1].dtype), meta

    def read_sequences(self, layer: int | str, corpus=None, check_corpus: bool = True):
        """Per-utterance frame sequences of one layer, from the ``frames`` pooling.

        Parameters
        ----------
        layer : int or str
        corpus : Corpus or Mapping[str, str], optional
            The corpus the store was extracted from: adds ``text`` and, when its utterances
            have phone alignments, ``phones`` (tuple of symbols) to ``meta``. A plain mapping
            ``utt_id -> text`` adds ``text`` only. (The store's metadata has no transcripts.)
        check_corpus : bool, default True
            For a Corpus, refuse one whose manifest hash differs from the store's fingerprint.

        Returns
        -------
        sequences : :class:`~probekit.store.rows.FrameSequences`
            A read-only sequence of ``(n_frames_i, hidden_size)`` arrays in the stored dtype,
            in corpus order, each read from the shard files when indexed (nothing is held:
            bounded memory at any corpus size); indexing with a list, an index array or a
            slice gives another FrameSequences over those utterances.
        meta : pandas.DataFrame, one row per utterance
            The ``frames.csv`` rows (``utt_id``, ``speaker``, groups, ``offset``, ``n_frames``).

        Raises
        ------
        StoreError
            The store lacks the ``frames`` pooling, an utterance's frames fall outside the
            stored array, the corpus is not the store's, or a stored id is not in ``corpus``.
        """
        from probekit.store.sequences import read_sequences

        return read_sequences(self, layer, corpus, check_corpus)

    def load_task(self, layer: int | str, task: str, lazy: bool = False):
        """``X, y, meta`` for a probing task.

        Parameters
        ----------
        layer : int or str
        task : str
            ``"phone"`` (phone pooling, y = phone label), ``"speaker"`` (utterance pooling,
            y = speaker id) or ``"group:<attribute>"`` (utterance pooling, y = that label,
            e.g. ``"group:accent"``, or an intersection ``"group:accent*gender"``).
        lazy : bool, default False
            Return ``X`` as :meth:`rows`' :class:`~probekit.store.rows.LayerRows` (nothing
            read; read it in pieces) instead of the whole array.

        Returns
        -------
        X : numpy.ndarray, shape (rows, hidden_size), or LayerRows when ``lazy``
        y : numpy.ndarray of str, shape (rows,)
        meta : pandas.DataFrame
        """
        from probekit.errors import ProbekitError
        from probekit.probes.tasks import get_task

        try:
            t = get_task(task)
        except ProbekitError:
            t = None
        if t is None or t.pooling == "frames":
            raise StoreError(f"unknown task {task!r}; tasks: 'phone', 'speaker', 'group:<attribute>' "
                             f"with attribute in {self.index['attributes']}")
        known = self.index["attributes"]
        group = t.attribute
        if group is not None and "*" not in group and group not in known:
            raise StoreError(f"task {task!r}: the corpus has no group attribute {group!r}; "
                             f"attributes: {known}")
        X, meta = self.rows(layer, t.pooling) if lazy else self.read(layer, t.pooling)
        if group is not None and "*" in group:
            add_intersection_column(meta, group, known)
        return X, t.labels(meta), meta

    def __repr__(self) -> str:
        rows = ", ".join(f"{k}={v}" for k, v in self.index["rows"].items())
        return (f"EmbeddingStore({str(self.root)!r}, encoder={self.fingerprint['encoder']!r}, "
                f"layers={len(self.layers)}, {rows}, dtype={self.index['dtype']})")
