"""Atomic file writes: the one way probekit writes a file that a reader (or a rerun) may see.

Each helper writes to a temporary sibling ``.<name>.tmp`` and then ``os.replace``-s it onto
the final name, so a process killed at any point (``kill -9`` included) leaves either the old
file, the new file, or no file, never a truncated one; a reader never sees half a CSV, JSON,
PNG or HTML file. The temporary name is fixed (not per process): the rerun that writes the
same file overwrites and renames a killed run's leftover, so nothing accumulates. Two
processes writing the same file at once are kept apart by :mod:`probekit.locks`, not here.

This guards against the process dying, not against the machine losing power (no ``fsync``).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

__all__ = ["write_text", "write_bytes", "write_json", "to_csv", "savefig", "replacing",
           "temp_name"]


def temp_name(path: str | os.PathLike) -> Path:
    """The temporary sibling that :func:`replacing` writes before renaming it onto ``path``."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp")


@contextmanager
def replacing(path: str | os.PathLike):
    """Yield a temporary path to write; on success it replaces ``path`` in one rename, on an
    exception it is removed and ``path`` is left as it was."""
    p = Path(path)
    tmp = temp_name(p)
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``Path(path).write_bytes(data)``, atomically."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """``Path(path).write_text(text)``, atomically (UTF-8 unless told)."""
    return write_bytes(path, text.encode(encoding))


def write_json(path: str | os.PathLike, obj, *, indent: int | None = 1, **kw) -> Path:
    """``obj`` as JSON (one trailing newline), atomically; ``kw`` go to :func:`json.dumps`."""
    return write_text(path, json.dumps(obj, indent=indent, **kw) + "\n")


def to_csv(df, path: str | os.PathLike, **kw) -> Path:
    """``df.to_csv(path, **kw)`` (a pandas DataFrame), atomically."""
    with replacing(path) as tmp:
        df.to_csv(tmp, **kw)
    return Path(path)


#: Figure metadata that would make two renderings of the same figure differ.
_NO_DATES = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None},
             "png": {}}


def savefig(fig, path: str | os.PathLike, **kw) -> Path:
    """``fig.savefig(path, **kw)`` (a matplotlib figure), atomically and reproducibly: the
    format follows the suffix of ``path``, no creation date is embedded (SVG, PDF) and SVG
    ids are salted with a fixed string, so the same figure gives the same bytes."""
    import matplotlib

    fmt = kw.pop("format", None) or Path(path).suffix.lstrip(".").lower() or "png"
    meta = {**_NO_DATES.get(fmt, {}), **kw.pop("metadata", {})}
    # SVG element ids are random unless salted: a fixed salt gives the same ids every time
    with replacing(path) as tmp, matplotlib.rc_context({"svg.hashsalt": "probekit"}):
        fig.savefig(tmp, format=fmt, **({"metadata": meta} if meta else {}), **kw)
    return Path(path)
