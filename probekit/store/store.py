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

__all__ = ["EmbeddingStore", "POOLINGS", "FINGERPRINT_NAME", "INDEX_NAME", "SHARDS_DIR",
           "corpus_hash", "shard_name", "write_json_atomic", "fingerprint_diff", "fingerprint_key"]

#: Pooling names: per utterance, per aligned phone, raw frames.
POOLINGS = ("utterance", "phone", "frames")
FINGERPRINT_NAME = "fingerprint.json"
INDEX_NAME = "store.json"
#: Bump when the pooling rule or file layout changes (part of the fingerprint).
FORMAT_VERSION = 1

# Metadata columns that are numbers; every other column is read back as a string.
_INT_COLUMNS = ("row", "corpus_index", "phone_index", "frame_start", "frame_stop", "offset", "n_frames")
_FLOAT_COLUMNS = ("start", "end", "duration")


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


#: Columns every metadata file has, by pooling (beside one ``group:<attribute>`` per attribute).
_META_COLUMNS = {
    "utterance": ("row", "corpus_index", "utt_id", "speaker", "sentence_id", "duration",
                  "n_frames"),
    "phone": ("row", "corpus_index", "utt_id", "speaker", "sentence_id", "phone_index", "phone",
              "start", "end", "frame_start", "frame_stop"),
    "frames": ("row", "corpus_index", "utt_id", "speaker", "sentence_id", "offset", "n_frames"),
}


def _read_meta(path: Path, pooling: str):
    """A shard's metadata CSV through its schema: the pooling's columns, numbers where numbers
    belong; anything else is a StoreError naming the file, column and row."""
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise StoreError(f"store file missing: {path} (damaged store: extract it again)") from None
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise StoreError(f"{path}: unreadable metadata ({str(exc).splitlines()[0]}; damaged "
                         "store: extract it again)") from None
    missing = [c for c in _META_COLUMNS.get(pooling, ()) if c not in df.columns]
    if missing:
        raise StoreError(f"{path}: no column(s) {missing} (damaged store: extract it again)")
    for c in df.columns:
        kind = np.int64 if c in _INT_COLUMNS else np.float64 if c in _FLOAT_COLUMNS else None
        if kind is None:
            continue
        num = pd.to_numeric(df[c], errors="coerce")
        bad = num.isna() | ((num % 1 != 0) if kind is np.int64 else False)
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise StoreError(f"{path}: column {c!r} row {i}: expected "
                             f"{'an integer' if kind is np.int64 else 'a number'}, found "
                             f"{df[c].iloc[i]!r} (damaged store: extract it again)")
        df[c] = num.astype(kind)
    return df


def _load_array(path: Path) -> np.ndarray:
    """One stored array, memory-mapped; never unpickled (``allow_pickle=False``)."""
    try:
        X = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise StoreError(f"store file missing: {path} (damaged store: extract it again)") from None
    except (ValueError, OSError, EOFError) as exc:
        raise StoreError(f"{path}: not an array extraction wrote ({str(exc).splitlines()[0]}; "
                         "damaged store: run `probekit store verify`, then extract again)"
                         ) from None
    if X.ndim != 2:
        raise StoreError(f"{path}: expected a (rows, hidden) array, found shape {X.shape} "
                         "(damaged store: extract it again)")
    return X


def _check_rows(info: dict, pooling: str, array_path: Path, n_array: int, meta_path: Path,
                n_meta: int) -> None:
    """Refuse a shard whose array or metadata rows differ from what extraction wrote (a lost
    row would shift every later label)."""
    want = info.get("rows", {}).get(pooling)
    want_meta = info.get("utterances") if pooling == "frames" else want
    if want is not None and n_array != want:
        raise StoreError(f"{array_path} has {n_array} rows; the store wrote {want} (damaged "
                         "store: extract it again)")
    if want_meta is not None and n_meta != want_meta:
        raise StoreError(f"{meta_path} has {n_meta} rows; the store wrote {want_meta} for "
                         f"{array_path.name} (damaged store: extract it again)")


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

    def read(self, layer: int | str, pooling: str = "utterance"):
        """Embeddings and metadata of one layer and pooling.

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
        import pandas as pd

        name = self.layer_name(layer)
        self._check_pooling(pooling)
        arrays, metas, offset, frame_offset = [], [], 0, 0
        for info, shard in zip(self.index["shards"], self.shard_paths()):
            path = shard / f"{name}.{pooling}.npy"
            arrays.append(_load_array(path))
            if arrays[-1].shape[1] != self.index["hidden_size"]:
                raise StoreError(f"{path} has {arrays[-1].shape[1]} columns; the store's hidden "
                                 f"size is {self.index['hidden_size']} (damaged store: extract "
                                 "it again)")
            meta = _read_meta(shard / f"{pooling}.csv", pooling)
            _check_rows(info, pooling, path, arrays[-1].shape[0], shard / f"{pooling}.csv",
                        len(meta))
            meta["row"] += offset
            if pooling == "frames":
                meta["offset"] += frame_offset
                frame_offset += arrays[-1].shape[0]
            offset += len(meta)
            metas.append(meta)
        # np.asarray drops the np.memmap subclass (the view keeps the mapping): one type,
        # and one writeability, for a store of one shard or many.
        X = np.asarray(arrays[0]) if len(arrays) == 1 else np.concatenate(arrays, axis=0)
        X.flags.writeable = False
        return X, pd.concat(metas, ignore_index=True)

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
        sequences : list of numpy.ndarray, each (n_frames_i, hidden_size)
            Read-only views into :meth:`read`'s array, stored dtype, in corpus order.
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

    def load_task(self, layer: int | str, task: str):
        """``X, y, meta`` for a probing task.

        Parameters
        ----------
        layer : int or str
        task : str
            ``"phone"`` (phone pooling, y = phone label), ``"speaker"`` (utterance pooling,
            y = speaker id) or ``"group:<attribute>"`` (utterance pooling, y = that label,
            e.g. ``"group:accent"``, or an intersection ``"group:accent*gender"``).

        Returns
        -------
        X : numpy.ndarray, shape (rows, hidden_size)
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
        X, meta = self.read(layer, t.pooling)
        if group is not None and "*" in group:
            add_intersection_column(meta, group, known)
        return X, t.labels(meta), meta

    def __repr__(self) -> str:
        rows = ", ".join(f"{k}={v}" for k, v in self.index["rows"].items())
        return (f"EmbeddingStore({str(self.root)!r}, encoder={self.fingerprint['encoder']!r}, "
                f"layers={len(self.layers)}, {rows}, dtype={self.index['dtype']})")
