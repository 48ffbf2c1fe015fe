"""Output folders that probekit owns: a stamp file, and the one rule for reusing or replacing them.

Every command that writes a folder (``extract``, ``probe``, ``analyze``, ``report``,
``compare``, ``train``, ``study run``, ``demo``, ``corpus align --out``, ``corpus validate
--write-clean``) claims it with :func:`claim_output` *before* writing anything. The claim writes
``.probekit-output.json`` (the stamp): the kind of output, the command, a fingerprint of what
it was computed from, and ``contents``, the entries probekit wrote there (names or glob patterns
relative to the folder, recorded before they are written). The rules:

- a missing or empty folder is created and stamped;
- a stamped folder of the same kind is reused, or, with ``fresh=True``, cleared first;
- a stamped folder of another kind is refused unless ``overwrite``;
- clearing removes **only the entries the stamp lists** (and the stamp), never anything else
  in the folder;
- a non-empty folder *without* a stamp is always refused, ``overwrite`` or not, even when its
  layout looks like a probekit output (``findings.md`` beside ``layer_curves.csv``, ``study.json``
  beside ``work/``): look-alikes are never adopted;
- a folder that is (or holds) an input of the same command is refused (``inputs``);
- before any of that, :func:`check_output_path` refuses a path no output can go to: an existing
  file (or a file on the way to it), a symbolic link (probekit neither writes nor deletes
  through links), a folder the user cannot write, an input of the command. Commands that
  compute before they write call it first, so a bad ``--out`` fails before the work.

:func:`finish_output` marks the folder complete (with e.g. the row count of every table), so a
reader can refuse an output that was killed mid-write (:func:`require_output`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path, PurePosixPath

from probekit.errors import ProbekitError
from probekit.locks import is_lock_file

__all__ = ["OUTPUT_STAMP_NAME", "OutputFolderError", "check_output_path", "claim_output",
           "read_stamp", "remove_output", "is_probekit_output", "write_stamp", "add_contents",
           "finish_output", "require_output", "read_tables"]

#: File name of the ownership stamp inside every output folder probekit owns (distinct from
#: the synthetic corpus stamp and the converted-weights stamp).
OUTPUT_STAMP_NAME = ".probekit-output.json"


class OutputFolderError(ProbekitError):
    """An output folder cannot be used (it holds something probekit did not write)."""


def read_stamp(folder: str | os.PathLike) -> dict | None:
    """The stamp of ``folder`` (``{"kind": ..., ...}``), or ``None`` if probekit did not write it."""
    p = Path(folder) / OUTPUT_STAMP_NAME
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return d if isinstance(d, dict) and isinstance(d.get("kind"), str) else None


def is_probekit_output(folder: str | os.PathLike) -> bool:
    return read_stamp(folder) is not None


def write_stamp(folder: Path, kind: str, info: dict | None = None, *,
                timestamp: bool = True) -> None:
    """Write (or replace) the stamp of ``folder``, marking it as a probekit ``kind`` output
    (``timestamp=False``: no creation time, for outputs that must be byte-identical on rebuild)."""
    from probekit import __version__

    d = {"kind": kind, "probekit": __version__,
         **({"created": time.strftime("%Y-%m-%dT%H:%M:%S%z")} if timestamp else {}),
         "contents": [], **(info or {})}
    tmp = Path(folder) / (OUTPUT_STAMP_NAME + ".tmp")
    tmp.write_text(json.dumps(d, indent=1) + "\n")
    os.replace(tmp, Path(folder) / OUTPUT_STAMP_NAME)


def _update_stamp(folder: Path, **fields) -> dict:
    stamp = read_stamp(folder)
    if stamp is None:
        raise OutputFolderError(f"{folder} has no {OUTPUT_STAMP_NAME}; it was not claimed")
    stamp.update(fields)
    tmp = folder / (OUTPUT_STAMP_NAME + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=1) + "\n")
    os.replace(tmp, folder / OUTPUT_STAMP_NAME)
    return stamp


def _check_entry(name: str) -> str:
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or name in (".", OUTPUT_STAMP_NAME):
        raise OutputFolderError(f"output entry {name!r} is not a plain name inside the folder")
    return name


def add_contents(folder: str | os.PathLike, *names: str) -> None:
    """Record entries (names or glob patterns) that probekit is about to write in ``folder``."""
    folder = Path(folder)
    stamp = read_stamp(folder) or {}
    have = list(stamp.get("contents", []))
    new = [_check_entry(n) for n in names if n not in have]
    if new:
        _update_stamp(folder, contents=have + new)


def finish_output(folder: str | os.PathLike, **fields) -> None:
    """Mark ``folder`` complete (``complete: true``) and store ``fields`` in its stamp."""
    _update_stamp(Path(folder), complete=True, **fields)


def require_output(folder: str | os.PathLike, kind: str, what: str = "") -> dict:
    """The stamp of a finished ``kind`` output in ``folder``; refuse anything else, saying why."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputFolderError(f"{folder} does not exist or is not a folder{what}")
    stamp = read_stamp(folder)
    if stamp is None and (folder / OUTPUT_STAMP_NAME).is_file():
        raise OutputFolderError(f"{folder / OUTPUT_STAMP_NAME} is not a probekit stamp (not JSON, or "
                                f"no 'kind' field): this {kind} cannot be vouched for{what}")
    if stamp is None:
        raise OutputFolderError(f"{folder} is not a probekit {kind} (no {OUTPUT_STAMP_NAME}){what}")
    if stamp["kind"] != kind:
        raise OutputFolderError(
            f"{folder} is a probekit {stamp['kind']} output, not a {kind}{what}")
    if "contents" not in stamp:
        raise OutputFolderError(f"{folder}: this {kind} was written by an older probekit that did "
                                f"not record what it wrote; run it again{what}")
    if not stamp.get("complete"):
        raise OutputFolderError(f"{folder}: the {kind} was not finished (interrupted while "
                                f"writing?); run it again{what}")
    return stamp


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _listed(folder: Path, stamp: dict) -> list[Path]:
    if not isinstance(stamp.get("contents"), list):
        raise OutputFolderError(
            f"{folder}: its {OUTPUT_STAMP_NAME} (from an older probekit) does not list what it wrote, "
            "so probekit will not delete anything in it; empty it yourself or choose another "
            "folder")
    found = []
    for name in stamp["contents"]:
        _check_entry(str(name))
        found += sorted(folder.glob(str(name))) if any(c in str(name) for c in "*?[") else \
            [folder / str(name)]
    return [p for p in found if p.exists() or p.is_symlink()]


def _clear(folder: Path, stamp: dict) -> None:
    """Remove what ``stamp`` lists (and the stamp); nothing else in ``folder`` is touched."""
    for p in _listed(folder, stamp):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    (folder / OUTPUT_STAMP_NAME).unlink(missing_ok=True)


def remove_output(folder: str | os.PathLike) -> None:
    """Delete what probekit wrote in ``folder`` (its stamp's contents, then the folder if it is
    left empty); refuse (:class:`OutputFolderError`) a folder probekit did not write."""
    folder = Path(folder)
    if folder.is_symlink():
        raise OutputFolderError(f"{folder} is a symbolic link; probekit does not delete "
                                "through links")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise OutputFolderError(f"{folder} is a file, not a probekit output folder; refusing "
                                "to delete it")
    stamp = read_stamp(folder)
    if stamp is None:
        raise OutputFolderError(
            f"{folder} was not written by probekit (no {OUTPUT_STAMP_NAME}); refusing to delete it. "
            "Choose another folder, or empty it yourself")
    _clear(folder, stamp)
    if not any(folder.iterdir()):
        folder.rmdir()


def _listed_in(folder: Path, path: Path) -> bool:
    """Whether ``path`` (inside ``folder``) is an entry that ``folder``'s stamp lists, i.e. a
    place the owner of ``folder`` lets probekit write (``ANALYSIS/report``)."""
    import fnmatch

    stamp = read_stamp(folder) if folder.is_dir() else None
    first = path.relative_to(folder).parts[0]
    return bool(stamp) and any(fnmatch.fnmatchcase(first, str(c))
                               for c in stamp.get("contents") or [])


def check_output_path(folder: str | os.PathLike, *, inputs: list | tuple = (),
                      option: str = "output folder") -> Path:
    """Refuse, before any work starts, an output path probekit cannot or must not write.

    One rule for every ``--out``: ``folder`` may not be a symbolic link (nothing is written
    or deleted through a link), an existing file, under a file, under a folder the user cannot
    write, (hold) one of ``inputs``, or lie inside one (unless that input's stamp lists it as
    one of its entries: ``report`` inside its analysis). Each refusal is one
    :class:`OutputFolderError` line naming ``option`` and the path, and saying what to do.
    Returns ``folder`` (expanded).
    """
    folder = Path(folder).expanduser()
    if folder.is_symlink():
        raise OutputFolderError(
            f"{option} {folder} is a symbolic link (to {os.readlink(folder)}); probekit neither "
            "writes nor deletes through links: give the folder itself, or another path")
    real = folder.resolve()
    for src in inputs:
        if src is None:
            continue
        s = Path(src).expanduser().resolve()
        if _is_within(s, real):
            raise OutputFolderError(
                f"{option} {folder} is (or holds) {src}, an input of this command; probekit "
                "never writes over what it reads. Choose another output folder")
        if real != s and _is_within(real, s) and not _listed_in(s, real):
            raise OutputFolderError(
                f"{option} {folder} is inside {src}, an input of this command; probekit "
                "writes beside what it reads, never into it. Choose a folder outside it")
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{option} {folder} is a file; an output folder was expected: "
                                "choose another path (or move the file away)")
    have = folder
    while not os.path.lexists(have) and have != have.parent:
        have = have.parent
    if not have.is_dir():
        raise OutputFolderError(f"{option} {folder}: {have} is a file, so no folder can be "
                                "made there; choose another path")
    if not os.access(have, os.W_OK | os.X_OK):
        raise OutputFolderError(f"{option} {folder}: {have} is not writable (a read-only "
                                "folder?); choose a folder you can write")
    return folder


def claim_output(folder: str | os.PathLike, kind: str, *, overwrite: bool = False,
                 fresh: bool = False, info: dict | None = None, command: str | None = None,
                 fingerprint=None, contents: list[str] | tuple = (),
                 inputs: list | tuple = ()) -> Path:
    """Make ``folder`` ready to hold a probekit output of ``kind`` (module docstring).

    Parameters
    ----------
    folder : path
    kind : str
        ``"analysis"``, ``"report"``, ``"study"``, ``"store"``...
    overwrite : bool
        Replace a probekit output of another kind (never a folder without a stamp).
    fresh : bool
        Clear a stamped folder of the same kind (only what its stamp lists) before use.
    info : dict, optional
        Extra fields for the stamp.
    command : str, optional
        The command that writes the folder (kept in the stamp).
    fingerprint : JSON value, optional
        What the output is computed from (kept in the stamp).
    contents : list of str
        Entries (names or glob patterns) the command will write; more may be recorded later
        with :func:`add_contents`.
    inputs : list of paths
        What the command reads: ``folder`` may be none of them and may not hold any.

    Returns
    -------
    Path
        The folder, existing and stamped.
    """
    folder = check_output_path(folder, inputs=inputs)
    try:
        return _claim(folder, kind, overwrite=overwrite, fresh=fresh, info=info, command=command,
                      fingerprint=fingerprint, contents=contents)
    except OSError as exc:  # e.g. a read-only file system, where even root cannot write
        raise OutputFolderError(f"output folder {folder}: cannot write there "
                                f"({exc.strerror or exc}); choose a folder you can write") from None


def _claim(folder: Path, kind: str, *, overwrite: bool, fresh: bool, info: dict | None,
           command: str | None, fingerprint, contents) -> Path:
    new_info = {**(info or {}), **({"command": command} if command else {}),
                **({"fingerprint": fingerprint} if fingerprint is not None else {}),
                "contents": [_check_entry(c) for c in contents]}
    if folder.is_dir() and any(not is_lock_file(p) for p in folder.iterdir()):
        stamp = read_stamp(folder)
        if stamp is None:
            raise OutputFolderError(
                f"{folder} is not empty and was not written by probekit (no {OUTPUT_STAMP_NAME}); "
                "probekit neither writes into nor deletes such a folder, even with "
                "--overwrite. Choose another folder")
        if stamp["kind"] != kind and not overwrite:
            raise OutputFolderError(
                f"{folder} holds a probekit {stamp['kind']} output, not a {kind}; choose "
                "another folder or pass --overwrite to replace it")
        if fresh or stamp["kind"] != kind:
            _clear(folder, stamp)
        else:
            add_contents(folder, *new_info["contents"])
            return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_stamp(folder, kind, new_info)
    return folder


def read_tables(folder: str | os.PathLike, stamp: dict, known, *, what: str,
                again: str) -> dict:
    """Every table a finished output's stamp lists (``tables``: name -> rows written;
    ``columns``: name -> columns written, when recorded), read from ``<name>.csv`` in
    ``folder`` and checked: an unknown name (not in ``known``), a missing or unreadable file,
    a lost column or another row count is an :class:`OutputFolderError` naming the table and
    ending with ``again`` (what to do). ``what``: the kind of output, for the messages.
    Returns ``{name: DataFrame}`` in the stamp's order (an empty file: an empty frame)."""
    import pandas as pd

    folder = Path(folder)
    tables = stamp.get("tables")
    if not isinstance(tables, dict) or not tables:
        raise OutputFolderError(f"{folder}: its stamp lists no tables; {again}")
    columns = stamp.get("columns") or {}  # absent in outputs written before it was recorded
    if not isinstance(columns, dict):
        raise OutputFolderError(f"{folder}: its stamp field 'columns' is not an object; {again}")
    out = {}
    for name, n in tables.items():
        path = folder / f"{name}.csv"
        if isinstance(n, bool) or not isinstance(n, int):
            raise OutputFolderError(f"{folder}: its stamp field 'tables.{name}' must be a row "
                                    f"count, found {n!r}; {again}")
        if name not in known:
            raise OutputFolderError(f"{folder}: its stamp lists table {name!r}, not one of "
                                    f"{', '.join(known)}; {again}")
        if not path.is_file():
            raise OutputFolderError(f"{folder}: table {path.name} is missing (the {what} wrote "
                                    f"{n} rows there); {again}")
        try:
            df = pd.read_csv(path, keep_default_na=True)
        except pd.errors.EmptyDataError:
            df = pd.DataFrame()
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise OutputFolderError(f"{folder}: table {path.name} is unreadable ({exc})") from None
        lost = [c for c in columns.get(name, []) if c not in df.columns]
        if lost:
            raise OutputFolderError(f"{folder}: table {path.name} lacks column "
                                    f"{', '.join(map(repr, lost[:5]))} (the {what} wrote it; "
                                    f"edited?); {again}")
        if len(df) != n:
            raise OutputFolderError(f"{folder}: table {path.name} has {len(df)} rows, the "
                                    f"{what} wrote {n} (truncated or edited?); {again}")
        out[name] = df
    return out
