"""The files of one shard: its arrays and metadata CSVs read through their schema.

Split from :mod:`probekit.store.store` (issue 23): :class:`~probekit.store.EmbeddingStore`
reads whole layers, :class:`~probekit.store.rows.LayerRows` reads them in pieces, and both
open and check a shard's files here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from probekit.errors import StoreError
from probekit.schema import coerce_numeric

# Metadata columns that are numbers; every other column is read back as a string.
_INT_COLUMNS = ("row", "corpus_index", "phone_index", "frame_start", "frame_stop", "offset", "n_frames")
_FLOAT_COLUMNS = ("start", "end", "duration")


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
        num, i = coerce_numeric(df[c], kind is np.int64)
        if i is not None:
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
