"""What a store's files must be: the index schema, shard sizes and checksums.

* :func:`read_index` reads ``store.json`` through its schema (:data:`INDEX_SCHEMA`): a
  missing key or a wrong type is a :class:`~probekit.errors.StoreError` naming the file, the
  key, what was expected and what was found.
* At commit time extraction records every shard file's size and SHA-256 in the shard's
  ``shard.json`` (:func:`shard_files`), which the index copies. Opening a store compares sizes
  (:func:`check_sizes`: one ``stat`` per file); :func:`damaged_shards` (``probekit store
  verify``, and ``extract`` on the same folder) compares checksums too.
* Shards written before checksums existed have no ``files`` entry: they are checked by row
  counts only, and :func:`damaged_shards` reports them as unverifiable rather than sound.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from probekit.errors import StoreError

__all__ = ["INDEX_SCHEMA", "SHARD_SCHEMA", "SHARD_INFO", "SHARDS_DIR", "StoreIndexError",
           "read_index", "check_index", "read_shard_info", "shard_files", "check_sizes",
           "shard_problem", "damaged_shards", "set_aside_damaged", "file_sha256"]

log = logging.getLogger(__name__)


class StoreIndexError(StoreError):
    """A store's ``store.json`` is unreadable or does not match its schema."""


#: Each shard's own record (name, utterances, rows per pooling, audio seconds, files).
SHARD_INFO = "shard.json"
#: The folder of shard folders inside a store.
SHARDS_DIR = "shards"


def _is_str_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_counts(v) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and _is_int(n) and n >= 0
                                       for k, n in v.items())


#: ``store.json``: key -> (check, what is expected).
INDEX_SCHEMA = {
    "encoder_layer_names": (_is_str_list, "a list of layer names"),
    "layers": (_is_str_list, "a list of layer names"),
    "hidden_size": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "poolings": (lambda v: _is_str_list(v) and bool(v)
                 and set(v) <= {"utterance", "phone", "frames"},
                 "a list of utterance, phone, frames"),
    "dtype": (lambda v: v in ("float16", "float32"), "float16 or float32"),
    "frame_shift": (lambda v: _is_number(v) and v > 0, "a positive number of seconds"),
    "attributes": (_is_str_list, "a list of attribute names"),
    "shards": (lambda v: isinstance(v, list) and bool(v), "a non-empty list of shards"),
    "rows": (_is_counts, "row counts by pooling"),
    "fingerprint": (lambda v: isinstance(v, dict) and isinstance(v.get("encoder"), str),
                    "the extraction fingerprint (an object with 'encoder')"),
}

#: A shard's record (in ``shard.json`` and in the index's ``shards`` list).
SHARD_SCHEMA = {
    "name": (lambda v: isinstance(v, str) and v.isdigit(), "a shard name such as '00000'"),
    "utterances": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "rows": (_is_counts, "row counts by pooling"),
}


def _found(v) -> str:
    text = json.dumps(v) if not isinstance(v, (dict, list)) else type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _check(d, schema: dict, where: str) -> None:
    if not isinstance(d, dict):
        raise StoreError(f"{where}: expected a JSON object, found {type(d).__name__} "
                         "(damaged store: extract it again)")
    for key, (ok, what) in schema.items():
        if key not in d:
            raise StoreError(f"{where}: no {key!r} (expected {what}; damaged store: extract "
                             "it again)")
        if not ok(d[key]):
            raise StoreError(f"{where}: {key!r} should be {what}, found {_found(d[key])} "
                             "(damaged store: extract it again)")
    files = d.get("files")
    if files is not None and not (isinstance(files, dict) and all(
            isinstance(f, dict) and _is_int(f.get("bytes")) and isinstance(f.get("sha256"), str)
            for f in files.values())):
        raise StoreError(f"{where}: 'files' should map file names to bytes and sha256 "
                         "(damaged store: extract it again)")


def check_index(index, path) -> dict:
    """Check a parsed ``store.json`` against :data:`INDEX_SCHEMA` (and each shard against
    :data:`SHARD_SCHEMA`); returns it."""
    _check(index, INDEX_SCHEMA, str(path))
    for i, shard in enumerate(index["shards"]):
        _check(shard, SHARD_SCHEMA, f"{path}: shards[{i}]")
    missing = [p for p in index["poolings"] if p not in index["rows"]]
    if missing:
        raise StoreError(f"{path}: 'rows' has no count for pooling(s) {missing} (damaged store: "
                         "extract it again)")
    return index


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: unreadable {what} ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0]}); damaged store: extract it again") from None


def read_index(path: str | os.PathLike) -> dict:
    """``store.json`` read and checked (:func:`check_index`); :class:`StoreIndexError` if bad."""
    path = Path(path)
    try:
        return check_index(_read_json(path, "store index"), path)
    except StoreError as exc:
        raise StoreIndexError(str(exc)) from None


def read_shard_info(folder: str | os.PathLike) -> dict:
    """A shard folder's ``shard.json``, checked against :data:`SHARD_SCHEMA`."""
    path = Path(folder) / SHARD_INFO
    info = _read_json(path, "shard record")
    _check(info, SHARD_SCHEMA, str(path))
    return info


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_files(folder: Path) -> dict:
    """Size and SHA-256 of every file of a shard folder (but its own ``shard.json``)."""
    return {p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
            for p in sorted(Path(folder).iterdir()) if p.is_file() and p.name != SHARD_INFO}


def _size_problem(folder: Path, files: dict, missing_ok: bool = False) -> str | None:
    if not folder.is_dir():
        return f"{folder} is missing"
    for name, want in files.items():
        p = folder / name
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            if missing_ok:
                continue
            return f"{p} is missing"
        if size != want["bytes"]:
            return f"{p} has {size} bytes; extraction wrote {want['bytes']}"
    return None


def check_sizes(root: Path, index: dict) -> None:
    """Refuse a store whose shard files differ in size from what extraction recorded (a
    missing file is refused when a read needs it, naming it: a read touches only its layer)."""
    for shard in index["shards"]:
        problem = _size_problem(root / SHARDS_DIR / shard["name"], shard.get("files") or {},
                                missing_ok=True)
        if problem:
            raise StoreError(f"damaged store: {problem}. Run `probekit store verify {root}`, "
                             "then `probekit extract` with the same options on it to "
                             "re-extract only the damaged shard(s)")


def shard_problem(folder: Path, recorded: dict | None = None) -> str | None:
    """Why a shard folder is not what extraction wrote (``None``: sound). ``recorded`` is the
    index's record of it; the folder's own ``shard.json`` must agree with it."""
    if not folder.is_dir():
        return f"{folder} is missing"
    try:
        info = read_shard_info(folder)
    except StoreError as exc:
        return str(exc)
    if recorded is not None and {k: recorded.get(k) for k in info} != info:
        return f"{folder / SHARD_INFO} differs from the store index's record of the shard"
    files = info.get("files")
    if files is None:
        return None
    problem = _size_problem(folder, files)
    if problem:
        return problem
    extra = sorted(p.name for p in folder.iterdir()
                   if p.is_file() and p.name != SHARD_INFO and p.name not in files)
    if extra:
        return f"{folder} holds file(s) extraction did not write: {extra}"
    for name, want in files.items():
        if file_sha256(folder / name) != want["sha256"]:
            return f"{folder / name} has other content than extraction wrote (checksum differs)"
    return None


def damaged_shards(root: Path, names, index: dict | None = None) -> dict[str, str]:
    """Shards among ``names`` whose files differ from their record: name -> the problem."""
    recorded = {s["name"]: s for s in index["shards"]} if index else {}
    out = {}
    for name in names:
        problem = shard_problem(Path(root) / SHARDS_DIR / name, recorded.get(name))
        if problem:
            out[name] = problem
    return out


def set_aside_damaged(root: Path, names, index: dict | None = None) -> list[str]:
    """Check shards (:func:`damaged_shards`); a damaged one is renamed to a stale temp folder
    (``shards/.tmp-<name>-damaged``, removed when the shard is written again), so extraction
    writes only the damaged shards again. Returns their names."""
    damaged = damaged_shards(root, names, index)
    for name, problem in damaged.items():
        log.warning("%s: shard %s is damaged (%s); extracting it again", root, name, problem)
        shard = Path(root) / SHARDS_DIR / name
        aside = shard.with_name(f".tmp-{name}-damaged")
        if shard.exists():
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(shard, aside)
    return list(damaged)
