"""Typed reading of the small JSON files probekit writes and reads back (run metadata, a
study's ``study.json``, a training run's ``finetune.json``...): one schema per kind, checked
where the file is read, and one error naming the file, the field, what was expected and what
was found (:class:`BadFileError`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from probekit.errors import ProbekitError

__all__ = ["BadFileError", "read_json_object", "check_fields"]


class BadFileError(ProbekitError, ValueError):
    """A file probekit reads is not what probekit writes there (not JSON, a wrong field...)."""


def _names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    words = {dict: "an object", list: "a list", str: "a string", bool: "true/false",
             int: "an integer", float: "a number", type(None): "null"}
    return " or ".join(words.get(t, t.__name__) for t in types)


def _found(v) -> str:
    return f"{_names(type(v))} ({json.dumps(v, default=str)[:40]})"


def check_fields(d: dict, source: str, schema: dict, required=()) -> dict:
    """Check ``d`` (from ``source``) against ``schema`` (field -> type or tuple of types; a
    field absent from ``d`` is fine unless ``required``); return ``d``."""
    for k in required:
        if k not in d:
            raise BadFileError(f"{source}: field {k!r} is missing (fields found: "
                               f"{', '.join(map(repr, d)) or 'none'})")
    for k, types in schema.items():
        if k not in d:
            continue
        v = d[k]
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in
                                           (types if isinstance(types, tuple) else (types,)))
        if not ok:
            raise BadFileError(f"{source}: field {k!r} must be {_names(types)}, found {_found(v)}")
    return d


def read_json_object(path: str | os.PathLike, what: str, schema: dict | None = None,
                     required=()) -> dict:
    """The JSON object in ``path`` (``what``: which file it is, for the message), checked
    against ``schema`` (:func:`check_fields`); :class:`BadFileError` names what is wrong."""
    p = Path(path)
    src = f"{p} ({what})"
    try:
        d = json.loads(p.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise BadFileError(f"{src}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise BadFileError(f"{src}: not UTF-8 text; probekit writes JSON here") from None
    except ValueError as exc:
        raise BadFileError(f"{src}: not valid JSON ({exc}); probekit did not write it, or it "
                           "was damaged") from None
    if not isinstance(d, dict):
        raise BadFileError(f"{src}: expected a JSON object, found {_found(d)}")
    return check_fields(d, src, schema or {}, required)
