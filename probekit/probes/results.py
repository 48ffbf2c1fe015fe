"""The results table: the one interchange format between probing and bias analysis.

One row per (encoder, store, layer, task, probe, train_set, test_group, seed, unit, metric).
``store`` is the short key of the embedding store's fingerprint
(:attr:`~probekit.store.EmbeddingStore.key`): a cell is done only for the store it was
computed from, so probing a re-extracted store never reuses old cells. A table written before
this column existed reads with ``store=""``. Every
``metric`` is an *error rate* (lower is better) so that analyses never need to know which
way a metric points:

* ``error``: classification error (1 - accuracy) for phone, speaker and group-ID probes;
* ``cer`` / ``wer``: character / word error rate of the CTC (ASR) probe.

``value * n`` is always an error *count*: ``n`` is the number of test items behind the
value (phones, utterances, reference characters or words), so micro averages are
``sum(value * n) / sum(n)`` and per-speaker rows can be pooled exactly.

``unit`` is a speaker id (per-speaker rows, what speaker-level statistics need) or ``"all"``
(the whole test group). ``train_set`` names what the probe was trained on: a group label,
``"all"`` (every group pooled) or ``"all-but:<label>"``; ``group_attribute`` says which
attribute the groups come from (e.g. ``accent``). ``n_train`` (items) and
``n_train_speakers`` record the equalised training size. ``sentence_split`` says whether the
cell's split kept sentences apart (``disjoint``, ``shared``, ``unknown`` without sentence
ids; ``""`` in tables written before it existed; :func:`probekit.probes.splits.sentence_status`).

The table is stored as CSV (no extra dependency) and appended to, never rewritten in place:
each run writes a new part file and the table is the union of its parts, so an interrupted
run loses at most the cells it had not finished, and a finished cell is never recomputed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from probekit.errors import ProbekitError

__all__ = ["RESULT_COLUMNS", "TABLE_COLUMNS", "CELL_KEYS", "ResultsError", "ResultsTable",
           "validate_results", "ERROR_METRICS", "cell_key", "SUPERSEDED_DIR"]

#: Columns of the results table, in order.
RESULT_COLUMNS = [
    "encoder", "layer", "layer_index", "task", "probe", "group_attribute", "train_set",
    "test_group", "seed", "unit", "metric", "value", "n", "n_train", "n_train_speakers",
]
#: Columns as stored: :data:`RESULT_COLUMNS` plus ``store`` (the store fingerprint's key; empty
#: in tables written before it existed, and in simulated tables).
TABLE_COLUMNS = RESULT_COLUMNS + ["store", "sentence_split"]
#: A cell of the grid: one trained probe evaluated on every test group.
CELL_KEYS = ["encoder", "store", "layer", "task", "probe", "group_attribute", "train_set", "seed"]
#: Sub-folder that :meth:`ResultsTable.retire` moves superseded parts to (never read).
SUPERSEDED_DIR = "superseded"
#: Metrics the table may hold (all error rates).
ERROR_METRICS = ("error", "cer", "wer")

_DTYPES = {"layer_index": "int64", "seed": "int64", "n": "int64", "n_train": "int64",
           "n_train_speakers": "int64", "value": "float64"}


class ResultsError(ProbekitError, ValueError):
    """A results table is malformed."""


def validate_results(df: pd.DataFrame) -> pd.DataFrame:
    """Check columns, types and value ranges; returns the frame with canonical dtypes.

    Raises
    ------
    ResultsError
        Naming the missing column, or the first offending row.
    """
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f"results table lacks column(s) {missing}")
    df = df.reindex(columns=TABLE_COLUMNS).copy()
    for col in ("store", "sentence_split"):  # optional: "" in older tables
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
    for col, dt in _DTYPES.items():
        try:
            df[col] = df[col].astype(dt)
        except (TypeError, ValueError) as exc:
            raise ResultsError(f"results column {col!r} is not {dt}: {exc}") from None
    for col in ("encoder", "layer", "task", "probe", "group_attribute", "train_set", "test_group",
                "unit", "metric"):
        df[col] = df[col].astype(str)
    bad = ~df["metric"].isin(ERROR_METRICS)
    if bad.any():
        raise ResultsError(f"unknown metric {df.loc[bad, 'metric'].iloc[0]!r} in row "
                           f"{int(bad.idxmax())}; metrics are error rates: {ERROR_METRICS}")
    bad = (df["value"] < 0) | df["value"].isna() | (df["n"] <= 0)
    if bad.any():
        i = int(bad.idxmax())
        raise ResultsError(f"row {i}: value must be a non-negative error rate with n > 0, got "
                           f"value={df.loc[i, 'value']}, n={df.loc[i, 'n']}")
    return df


class ResultsTable:
    """A folder of CSV part files forming one results table.

    Parameters
    ----------
    root : path
        Folder (created on first append). ``ResultsTable(root).load()`` reads every part.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ResultsError(f"{self.root} is a file; a results table is a folder of parts")

    def parts(self) -> list[Path]:
        return sorted(self.root.glob("part-*.csv")) if self.root.exists() else []

    def load(self) -> pd.DataFrame:
        """The whole table (empty with the right columns when nothing was written)."""
        frames = []
        for p in self.parts():
            try:
                frames.append(pd.read_csv(p, keep_default_na=False,
                                          dtype={"unit": str, "test_group": str, "train_set": str,
                                                 "store": str, "sentence_split": str}))
            except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                raise ResultsError(f"{p}: unreadable results part ({exc})") from None
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, "object")) for c in TABLE_COLUMNS})
        return validate_results(pd.concat(frames, ignore_index=True))

    def done_cells(self) -> set[tuple]:
        """Keys (in :data:`CELL_KEYS` order) of cells already in the table."""
        df = self.load()
        return set(map(tuple, df[CELL_KEYS].astype(str).drop_duplicates().itertuples(index=False)))

    def stores(self) -> dict[str, set[str]]:
        """Store keys in the table, by encoder name (``""``: written before keys existed)."""
        df = self.load()
        return {str(e): set(d["store"].astype(str)) for e, d in df.groupby("encoder")}

    def retire(self, stale) -> list[Path]:
        """Move every part for which ``stale(part_frame)`` is true to ``superseded/``.

        Parts are never edited or deleted: superseded ones stay on disk, out of the table.
        Returns the moved parts' new paths.
        """
        moved = []
        for p in self.parts():
            part = validate_results(pd.read_csv(p, keep_default_na=False,
                                                dtype={"unit": str, "test_group": str,
                                                       "train_set": str, "store": str,
                                                       "sentence_split": str}))
            if stale(part):
                dest = self.root / SUPERSEDED_DIR
                dest.mkdir(exist_ok=True)
                os.replace(p, dest / p.name)
                moved.append(dest / p.name)
        return moved

    def append(self, rows: pd.DataFrame | Iterable[dict]) -> Path | None:
        """Write ``rows`` as a new part, atomically (temp file + rename)."""
        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        if df.empty:
            return None
        df = validate_results(df)
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"part-{pd.Timestamp.now('UTC').strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:6]}.csv"
        tmp = self.root / f".{name}.tmp"
        df.to_csv(tmp, index=False)
        os.replace(tmp, self.root / name)
        return self.root / name


def cell_key(row: dict) -> tuple:
    """The :data:`CELL_KEYS` tuple of a row or cell description, as strings."""
    return tuple(str(row[k]) for k in CELL_KEYS)
