"""Output folders that probekit owns: a stamp file, and the rules for reusing or replacing them.

Every command that writes a folder (``analyze --out``, ``report --out``, ``study run --out``,
``demo --out``) claims it with :func:`claim_output`, which writes ``.probekit-output.json``
(the stamp: what kind of output, which probekit, when). The rules:

- a missing or empty folder is created and stamped;
- a stamped folder of the same kind is reused, or emptied first with ``fresh=True`` (what
  ``analyze`` does, so figures of an older analysis can never leak into a new report);
- a stamped folder of another kind is refused unless ``overwrite``;
- a non-empty folder *without* a stamp is always refused, ``overwrite`` or not: probekit only
  ever deletes folders it wrote. (``--overwrite ~/data`` names a folder probekit did not
  write, so it is an error, and nothing is deleted.)

Folders written before stamps existed are recognised by their layout (``study.json`` beside
``work/`` for a study; ``findings.md`` beside the analysis tables, e.g. ``layer_curves.csv``,
for an analysis) and adopted.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from probekit.errors import ProbekitError
from probekit.locks import is_lock_file

__all__ = ["STAMP_NAME", "OutputFolderError", "claim_output", "read_stamp", "remove_output",
           "is_probekit_output", "write_stamp"]

#: File name of the stamp inside every folder probekit owns.
STAMP_NAME = ".probekit-output.json"


class OutputFolderError(ProbekitError):
    """An output folder cannot be used (it holds something probekit did not write)."""


def read_stamp(folder: str | os.PathLike) -> dict | None:
    """The stamp of ``folder`` (``{"kind": ..., ...}``), or ``None`` if probekit did not write it."""
    folder = Path(folder)
    p = folder / STAMP_NAME
    if p.is_file():
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return d if isinstance(d, dict) and "kind" in d else None
    if (folder / "study.json").is_file() and (folder / "work").is_dir() or \
            (folder / "study.json").is_file() and len(list(folder.iterdir())) == 1:
        return {"kind": "study", "legacy": True}
    if (folder / "findings.md").is_file() and any(
            (folder / t).is_file() for t in ("layer_curves.csv", "typing.csv",
                                             "transfer_matrix.csv", "own_vs_broad.csv")):
        return {"kind": "analysis", "legacy": True}
    return None


def is_probekit_output(folder: str | os.PathLike) -> bool:
    return read_stamp(folder) is not None


def write_stamp(folder: Path, kind: str, info: dict | None = None) -> None:
    """Write (or replace) the stamp of ``folder``, marking it as a probekit ``kind`` output."""
    from probekit import __version__

    d = {"kind": kind, "probekit": __version__,
         "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(info or {})}
    tmp = folder / (STAMP_NAME + ".tmp")
    tmp.write_text(json.dumps(d, indent=1) + "\n")
    os.replace(tmp, folder / STAMP_NAME)


def remove_output(folder: str | os.PathLike) -> None:
    """Delete a folder probekit wrote; refuse (:class:`OutputFolderError`) any other."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise OutputFolderError(f"{folder} is a file, not a probekit output folder; refusing "
                                "to delete it")
    if read_stamp(folder) is None:
        raise OutputFolderError(
            f"{folder} was not written by probekit (no {STAMP_NAME}); refusing to delete it. "
            "Choose another folder, or empty it yourself")
    shutil.rmtree(folder)


def claim_output(folder: str | os.PathLike, kind: str, *, overwrite: bool = False,
                 fresh: bool = False, info: dict | None = None) -> Path:
    """Make ``folder`` ready to hold a probekit output of ``kind`` (module docstring).

    Parameters
    ----------
    folder : path
    kind : str
        ``"analysis"``, ``"report"``, ``"study"``...
    overwrite : bool
        Replace a probekit output of another kind (never a folder without a stamp).
    fresh : bool
        Empty a stamped folder of the same kind before use.
    info : dict, optional
        Extra fields for the stamp.

    Returns
    -------
    Path
        The folder, existing and stamped.
    """
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{folder} is a file; an output folder was expected")
    if folder.is_dir() and any(not is_lock_file(p) for p in folder.iterdir()):
        stamp = read_stamp(folder)
        if stamp is None:
            raise OutputFolderError(
                f"{folder} is not empty and was not written by probekit (no {STAMP_NAME}); "
                "probekit neither writes into nor deletes such a folder, even with "
                "--overwrite. Choose another folder")
        if stamp.get("kind") != kind and not overwrite:
            raise OutputFolderError(
                f"{folder} holds a probekit {stamp.get('kind')} output, not a {kind}; choose "
                "another folder or pass --overwrite to replace it")
        if fresh or stamp.get("kind") != kind:
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / STAMP_NAME).is_file():
        write_stamp(folder, kind, info)
    return folder
