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
``draw`` is the version of the training-set draw (:data:`probekit.probes.splits.DRAW_VERSION`
for the content tasks' equal-size sets, ``"1"`` for the speaker-ID and group-ID ``all`` set,
``""`` in tables written before it existed): :meth:`ResultsTable.retire_draws` retires cells
of another draw so that old and new training sets never mix in one analysis.

The table is stored as CSV (no extra dependency) and appended to, never rewritten in place:
each run writes a new part file and the table is the union of its parts, so an interrupted
run loses at most the cells it had not finished, and a finished cell is never recomputed.

A cell is in the table once. Appends hold the folder's writer lock
(:func:`probekit.locks.folder_lock`) and check the cells already there under it, so two
processes writing one table (a second run of the same grid, or shards of one grid) can never
add a cell twice; and :meth:`ResultsTable.load` refuses a table that has a cell more than
once (written by an older probekit), naming the cells and their parts, rather than count its
rows twice. :meth:`ResultsTable.dedupe` (``probekit results dedupe``) repairs such a table.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from probekit.errors import ProbekitError
from probekit.locks import folder_lock
from probekit.schema import coerce_numeric

__all__ = ["RESULT_COLUMNS", "TABLE_COLUMNS", "CELL_KEYS", "ROW_KEYS", "ResultsError",
           "DuplicateCellsError", "ResultsTable", "validate_results", "ERROR_METRICS", "cell_key",
           "SUPERSEDED_DIR"]

#: Columns of the results table, in order.
RESULT_COLUMNS = [
    "encoder", "layer", "layer_index", "task", "probe", "group_attribute", "train_set",
    "test_group", "seed", "unit", "metric", "value", "n", "n_train", "n_train_speakers",
]
#: Columns as stored: :data:`RESULT_COLUMNS` plus ``store`` (the store fingerprint's key; empty
#: in tables written before it existed, and in simulated tables).
TABLE_COLUMNS = RESULT_COLUMNS + ["store", "sentence_split", "draw"]
#: A cell of the grid: one trained probe evaluated on every test group.
CELL_KEYS = ["encoder", "store", "layer", "task", "probe", "group_attribute", "train_set", "seed"]
#: A row of a cell: a cell has one row per test group, unit and metric.
ROW_KEYS = CELL_KEYS + ["test_group", "unit", "metric"]
#: Sub-folder that :meth:`ResultsTable.retire` moves superseded parts to (never read).
SUPERSEDED_DIR = "superseded"
#: Metrics the table may hold (all error rates).
ERROR_METRICS = ("error", "cer", "wer")

log = logging.getLogger(__name__)

_DTYPES = {"layer_index": "int64", "seed": "int64", "n": "int64", "n_train": "int64",
           "n_train_speakers": "int64", "value": "float64"}


class ResultsError(ProbekitError, ValueError):
    """A results table is malformed."""


class DuplicateCellsError(ResultsError):
    """A results table holds a cell (or a row) more than once: its rows would count twice."""


def _keys(df: pd.DataFrame) -> list[tuple]:
    """The :data:`CELL_KEYS` tuple (as strings) of every row."""
    return list(zip(*(df[c].astype(str).tolist() for c in CELL_KEYS)))


def _cells_text(cells: list[tuple], where: dict | None = None, limit: int = 3) -> str:
    """``(enc, store, layer, ...) in part-a.csv + part-b.csv; ...`` for the first ``limit``."""
    shown = [f"({', '.join(c)})" + (f" in {' + '.join(where[c])}" if where else "")
             for c in cells[:limit]]
    more = f"; and {len(cells) - limit} more" if len(cells) > limit else ""
    return f"cell(s) ({', '.join(CELL_KEYS)}) " + "; ".join(shown) + more


def validate_results(df: pd.DataFrame) -> pd.DataFrame:
    """Check columns, types, value ranges and that no row repeats another; returns the frame
    with canonical dtypes.

    Raises
    ------
    ResultsError
        Naming the missing column, or the first offending row.
    DuplicateCellsError
        When rows repeat a (cell, test group, unit, metric): naming the cells.
    """
    df = _normalise(df)
    dup = df.duplicated(ROW_KEYS, keep=False)
    if dup.any():
        cells = list(dict.fromkeys(_keys(df.loc[dup])))
        raise DuplicateCellsError(
            f"results hold {int(dup.sum())} rows that repeat another row's {ROW_KEYS} (their "
            f"errors would count twice), in {_cells_text(cells)}")
    return df


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Columns, dtypes and value ranges of :func:`validate_results`, without the repeat check."""
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f"results table lacks column(s) {missing}")
    df = df.reindex(columns=TABLE_COLUMNS).copy()
    for col in ("store", "sentence_split", "draw"):  # optional: "" in older tables
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
    for col, dt in _DTYPES.items():
        # a float may be missing here (NaN values are checked below); an integer may not
        num, i = coerce_numeric(df[col], dt == "int64", allow_nan=True)
        if i is not None:
            raise ResultsError(f"column {col!r} row {i}: expected "
                               f"{'an integer' if dt == 'int64' else 'a number'}, found "
                               f"{str(df[col].iloc[i])!r}")
        df[col] = num.astype(dt)
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
        self._cells: dict[str, set[tuple]] = {}  # part name -> its cells (parts never change)
        self._indexed: list[str] = []  # the parts _cells was last checked for repeats with

    def parts(self) -> list[Path]:
        return sorted(self.root.glob("part-*.csv")) if self.root.exists() else []

    def lock(self, wait: bool = True):
        """The table's writer lock (a context manager, :func:`probekit.locks.folder_lock`)."""
        return folder_lock(self.root, what="results table", wait=wait)

    def read_part(self, p: str | os.PathLike) -> pd.DataFrame:
        """One part file, checked (:func:`validate_results`); an error names the part."""
        return self._checked(Path(p), validate_results)

    @classmethod
    def _checked(cls, p: Path, check=None) -> pd.DataFrame:
        """A part read through the table's schema (``check``, default :func:`_normalise`), its
        errors prefixed with the part's path."""
        try:
            return (check or _normalise)(cls._read(p))
        except DuplicateCellsError as exc:
            raise DuplicateCellsError(f"{p}: {exc}") from None
        except ResultsError as exc:
            raise ResultsError(f"{p}: {exc}" if str(p) not in str(exc) else str(exc)) from None

    @staticmethod
    def _read(p: Path) -> pd.DataFrame:
        try:
            return pd.read_csv(p, keep_default_na=False,
                               dtype={"unit": str, "test_group": str, "train_set": str,
                                      "store": str, "sentence_split": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ResultsError(f"{p}: unreadable results part ({msg})") from None

    def _duplicates_error(self, where: dict[tuple, list[str]]) -> DuplicateCellsError:
        cells = sorted(where)
        return DuplicateCellsError(
            f"results table {self.root} has {len(cells)} cell(s) written more than once (their "
            f"rows would count twice): {_cells_text(cells, where)}. Run `probekit results "
            f"dedupe {self.root}` to keep each cell's first part (the others move to "
            f"{SUPERSEDED_DIR}/)")

    def load(self) -> pd.DataFrame:
        """The whole table (empty with the right columns when nothing was written).

        Raises
        ------
        DuplicateCellsError
            When a cell is in more than one part (or a row twice in one), naming the cells
            and the parts: see :meth:`dedupe`.
        """
        frames = [self._checked(p).assign(_part=p.name) for p in self.parts()]
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, "object")) for c in TABLE_COLUMNS})
        df = pd.concat(frames, ignore_index=True)
        keys = df.reindex(columns=CELL_KEYS).astype(object).fillna("").astype(str)
        n_parts = keys.assign(_part=df["_part"]).groupby(CELL_KEYS)["_part"].unique()
        twice = n_parts[n_parts.map(len) > 1]
        if len(twice):
            raise self._duplicates_error({tuple(map(str, k)): list(v) for k, v in twice.items()})
        try:
            return validate_results(df.drop(columns="_part"))
        except DuplicateCellsError as exc:
            raise DuplicateCellsError(f"{self.root}: {exc}. Run `probekit results dedupe "
                                      f"{self.root}` to keep the first of each") from None

    def _cell_index(self) -> dict[str, set[tuple]]:
        """Cells of every part, reading only parts not read before; refuses a cell in two parts."""
        parts = self.parts()
        names = [p.name for p in parts]
        if names == self._indexed:
            return self._cells
        for p in parts:
            if p.name not in self._cells:
                self._cells[p.name] = set(_keys(self._checked(p, validate_results)))
        self._cells = {n: self._cells[n] for n in names}
        seen: dict[tuple, list[str]] = {}
        for n in names:
            for c in self._cells[n]:
                seen.setdefault(c, []).append(n)
        twice = {c: ps for c, ps in seen.items() if len(ps) > 1}
        if twice:
            raise self._duplicates_error(twice)
        self._indexed = names
        return self._cells

    def done_cells(self) -> set[tuple]:
        """Keys (in :data:`CELL_KEYS` order) of cells already in the table."""
        return set().union(*self._cell_index().values())

    def stores(self) -> dict[str, set[str]]:
        """Store keys in the table, by encoder name (``""``: written before keys existed)."""
        df = self.load()
        return {str(e): set(d["store"].astype(str)) for e, d in df.groupby("encoder")}

    def _supersede(self, p: Path) -> Path:
        dest = self.root / SUPERSEDED_DIR
        dest.mkdir(exist_ok=True)
        os.replace(p, dest / p.name)
        return dest / p.name

    def retire(self, stale) -> list[Path]:
        """Move every part for which ``stale(part_frame)`` is true to ``superseded/``.

        Parts are never edited or deleted: superseded ones stay on disk, out of the table.
        Returns the moved parts' new paths.
        """
        with self.lock():
            return [self._supersede(p) for p in self.parts()
                    if stale(self._checked(p, validate_results))]

    def retire_layer_positions(self, encoder: str, store: str, layer_index: dict) -> list[Path]:
        """Retire the parts of ``encoder`` / ``store`` whose ``layer_index`` is not the
        encoder's layer index ``layer_index[layer]``: parts written when it was a position
        among the *stored* layers (they differ when a store holds some of the layers only).
        They move to ``superseded/`` with a warning naming them; their cells are computed
        again."""
        def stale(d: pd.DataFrame) -> bool:
            mine = d[(d["encoder"].astype(str) == encoder) & (d["store"].astype(str) == store)]
            return bool((mine["layer"].astype(str).map(layer_index) != mine["layer_index"]).any())

        moved = self.retire(stale)
        if moved:
            log.warning("results part(s) %s of %s number layers by their position among the stored "
                        "layers (written before layer_index meant the encoder's layer index); "
                        "moved to %s, their cells are computed again",
                        ", ".join(p.name for p in moved), encoder, self.root / SUPERSEDED_DIR)
        return moved

    def retire_draws(self, encoder: str, task: str, draw: str) -> list[Path]:
        """Retire the parts holding cells of ``encoder`` / ``task`` whose training sets came
        from another draw than ``draw`` (the ``draw`` column; ``""``: older probekit). They
        move to ``superseded/`` with a warning naming them; their cells are computed again."""
        def stale(d: pd.DataFrame) -> bool:
            mine = d[(d["encoder"].astype(str) == encoder) & (d["task"].astype(str) == task)]
            return bool((mine["draw"].astype(str) != draw).any())

        moved = self.retire(stale)
        if moved:
            log.warning("results part(s) %s of %s / %s were trained on sets of another "
                        "training-set draw (not draw %s); moved to %s, their cells are computed "
                        "again", ", ".join(p.name for p in moved), encoder, task, draw,
                        self.root / SUPERSEDED_DIR)
        return moved

    def _write_part(self, df: pd.DataFrame) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"part-{pd.Timestamp.now('UTC').strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:6]}.csv"
        tmp = self.root / f".{name}.tmp"
        df.to_csv(tmp, index=False)
        os.replace(tmp, self.root / name)
        return self.root / name

    def append(self, rows: pd.DataFrame | Iterable[dict], *, done: str = "error") -> Path | None:
        """Write ``rows`` as a new part, atomically (temp file + rename), under the table's lock.

        Parameters
        ----------
        done : {"error", "skip"}
            Rows of cells the table already holds: refuse them (:class:`DuplicateCellsError`
            naming the cells), or leave them out (what the grid does: another process wrote
            those cells since it looked).

        Returns
        -------
        The new part, or ``None`` when nothing was left to write.
        """
        if done not in ("error", "skip"):
            raise ResultsError(f"done must be 'error' or 'skip', got {done!r}")
        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        if df.empty:
            return None
        df = validate_results(df)
        with self.lock():
            index = self._cell_index()
            have = set().union(*index.values())
            keys = pd.Series(_keys(df), index=df.index)
            old = keys.map(lambda k: k in have).astype(bool)
            if old.any():
                cells = sorted(set(keys[old]))
                if done == "error":
                    where = {c: [n for n, cs in index.items() if c in cs] for c in cells}
                    raise DuplicateCellsError(f"results table {self.root} already holds "
                                              f"{_cells_text(cells, where)}; not written again")
                log.info("%s: %d cell(s) were written by another process meanwhile; kept theirs",
                         self.root, len(cells))
                df = df[~old]
                if df.empty:
                    return None
            path = self._write_part(df)
            self._cells[path.name] = set(keys[~old])
            self._indexed = sorted(self._indexed + [path.name])  # its cells are new: checked
            return path

    def dedupe(self) -> tuple[list[Path], list[Path]]:
        """Repair a table that holds a cell more than once: keep each cell's first part.

        Parts are read in name (= time) order; a part holding a cell already seen in an earlier
        part, or a row twice, moves to ``superseded/``, and what it held that is not a repeat
        is written as a new part. Nothing is deleted. Returns (moved parts, new parts).
        """
        moved, written = [], []
        with self.lock():
            owner: dict[tuple, str] = {}
            for p in self.parts():
                whole = self._checked(p)
                df = whole.drop_duplicates(ROW_KEYS)
                keys = _keys(df)
                keep = pd.Series([owner.setdefault(k, p.name) == p.name for k in keys],
                                 index=df.index, dtype=bool)
                if keep.all() and len(df) == len(whole):
                    continue
                moved.append(self._supersede(p))
                if keep.any():
                    written.append(self._write_part(df[keep]))
            self._cells, self._indexed = {}, []
        if moved:
            log.info("%s: %d part(s) with repeated cells moved to %s/, %d rewritten without them",
                     self.root, len(moved), SUPERSEDED_DIR, len(written))
        return moved, written


def cell_key(row: dict) -> tuple:
    """The :data:`CELL_KEYS` tuple of a row or cell description, as strings."""
    return tuple(str(row[k]) for k in CELL_KEYS)
