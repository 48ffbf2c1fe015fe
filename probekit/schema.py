"""Typed loaders for the files probekit reads: one small schema per kind of file or table.

A schema is a mapping ``key -> kind`` where kind is one of :data:`KINDS` (``"int"``,
``"number"``, ``"str"``, ``"path"``, ``"bool"``, ``"table"``, ``"list"``, ``"list[int]"``, ``"list[str]"``;
a trailing ``+`` asks for a non-empty list; ``"a|b"`` accepts either). :func:`read_fields` checks a parsed mapping
against one: unknown keys are refused with the list of known keys, a wrong type names the key,
the expected type and what was found. Errors are raised as the caller's
:class:`~probekit.errors.ProbekitError` subclass, so each reader keeps its own error type.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from probekit.errors import ProbekitError

__all__ = ["KINDS", "check_value", "read_fields", "read_utf8"]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _list_of(test):
    return lambda v: isinstance(v, (list, tuple)) and all(test(x) for x in v)


#: kind -> (test, words for the message)
KINDS = {
    "int": (_is_int, "an integer"),
    "number": (_is_number, "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "path": (lambda v: isinstance(v, (str, os.PathLike)), "a path (string)"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "table": (lambda v: isinstance(v, Mapping), "a table (key = value pairs)"),
    "list": (lambda v: isinstance(v, (list, tuple)), "a list"),
    "list[int]": (_list_of(_is_int), "a list of integers"),
    "list[str]": (_list_of(lambda x: isinstance(x, str)), "a list of strings"),
}


def _found(v) -> str:
    return f"{v!r} ({type(v).__name__})" if not isinstance(v, Mapping) else "a table"


def check_value(value, kind: str, key: str, where: str, error: type[ProbekitError]):
    """``value`` if it is of ``kind`` (lists become tuples), else ``error`` naming ``key``."""
    if "|" in kind:  # one of several kinds: the first that fits
        for k in kind.split("|"):
            try:
                return check_value(value, k, key, where, error)
            except error:
                pass
        raise error(f"{where}: {key} must be "
                    f"{' or '.join(KINDS[k.rstrip('+')][1] for k in kind.split('|'))}; "
                    f"found {_found(value)}")
    base, nonempty = kind.rstrip("+"), kind.endswith("+")
    test, words = KINDS[base]
    if not test(value):
        raise error(f"{where}: {key} must be {words}{', not empty' if nonempty else ''}; "
                    f"found {_found(value)}")
    if nonempty and len(value) == 0:
        raise error(f"{where}: {key} must be {words}, not empty; found []")
    return tuple(value) if isinstance(value, list) else value


def read_fields(d, schema: Mapping[str, str], where: str, error: type[ProbekitError], *,
                what: str = "table", prefix: str = "") -> dict:
    """The keys of ``d`` present in ``schema``, type-checked; unknown keys refused.

    ``prefix`` (e.g. ``"analysis."``) is put before each key in messages.
    """
    if not isinstance(d, Mapping):
        raise error(f"{where}: {prefix.rstrip('.') or what} must be a table (key = value "
                    f"pairs); found {_found(d)}")
    unknown = sorted(set(d) - set(schema))
    if unknown:
        raise error(f"{where}: unknown key(s) {[prefix + k for k in unknown]} in the {what}; "
                    f"known: {sorted(schema)}")
    return {k: check_value(v, schema[k], prefix + k, where, error) for k, v in d.items()
            if v is not None}


def read_utf8(path: str | os.PathLike, error: type[ProbekitError]) -> str:
    """The text of ``path``; a file that is not UTF-8 is ``error`` naming the file and where
    the first bad byte is (instead of a ``UnicodeDecodeError``)."""
    p = Path(path)
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(f"{p}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file "
                    "as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def coerce_numeric(column, integer: bool, *, allow_nan: bool = False):
    """``(numbers, row)``: a table column (of text or numbers) as numbers, and the position of
    its first bad entry (a text that is no number, a non-whole number in an ``integer`` column,
    a missing value unless ``allow_nan`` and not ``integer``), or None. The caller casts and
    words the error: the one reader of typed CSV columns (embedding-store metadata, results)."""
    import pandas as pd

    num = pd.to_numeric(column, errors="coerce")
    bad = num.isna() if integer or not allow_nan else num.isna() & column.notna()
    if integer:
        bad = bad | (num % 1 != 0)
    return num, (int(bad.to_numpy().argmax()) if bad.any() else None)
