"""A small reader for Praat TextGrid files (long and short text formats).

Praat's own reader treats both text formats alike: everything that is not a number, a quoted
string or a ``<flag>`` is a comment. We do the same, which also skips the ``[i]`` indices of the
long format. Binary TextGrids are not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from probekit.errors import CorpusError

__all__ = ["Interval", "Tier", "read_textgrid"]

# Order matters: a quoted string may contain digits or brackets.
_TOKEN = re.compile(
    r'"(?P<str>(?:[^"]|"")*)"'
    r"|\[[^\]]*\]"
    r"|(?P<flag><\w+>)"
    r"|(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|!.*"
)


@dataclass(frozen=True)
class Interval:
    """One interval (or point, with ``start == end``) of a tier; times in seconds."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Tier:
    """A named tier: ``kind`` is ``"IntervalTier"`` or ``"TextTier"`` (points)."""

    name: str
    kind: str
    intervals: tuple[Interval, ...]


def _decode(raw: bytes) -> str:
    # Praat writes UTF-16 (with a BOM) whenever a label is not ASCII.
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _tokens(text: str) -> list[str | float]:
    out: list[str | float] = []
    for m in _TOKEN.finditer(text):
        if m.group("str") is not None:
            out.append(m.group("str").replace('""', '"'))
        elif m.group("flag") is not None:
            out.append(m.group("flag"))
        elif m.group("num") is not None:
            out.append(float(m.group("num")))
    return out


def read_textgrid(path: str | Path) -> dict[str, Tier]:
    """Read a TextGrid file.

    Parameters
    ----------
    path : path
        A ``.TextGrid`` in Praat's long or short text format (UTF-8, UTF-16 or Latin-1).

    Returns
    -------
    dict of str to Tier
        Tiers by name, in file order.

    Raises
    ------
    CorpusError
        Naming the file when it is not a text TextGrid or is truncated.
    """
    path = Path(path)
    try:
        toks = _tokens(_decode(path.read_bytes()))
    except OSError as exc:
        raise CorpusError(f"cannot read TextGrid {path}: {exc}") from exc
    pos = 0

    def take(kind: type, what: str):
        nonlocal pos
        if pos >= len(toks):
            raise CorpusError(f"TextGrid {path} ends early (expected {what})")
        tok = toks[pos]
        pos += 1
        if kind is float and not isinstance(tok, float):
            raise CorpusError(f"TextGrid {path}: expected a number for {what}, got {tok!r}")
        if kind is str and not isinstance(tok, str):
            raise CorpusError(f"TextGrid {path}: expected a string for {what}, got {tok!r}")
        return tok

    if toks[:2] != ["ooTextFile", "TextGrid"]:
        raise CorpusError(f"{path} is not a text-format TextGrid (binary files are not supported)")
    pos = 2
    take(float, "xmin")
    take(float, "xmax")
    if pos < len(toks) and toks[pos] in ("<exists>", "<absent>"):
        if take(str, "tiers flag") == "<absent>":
            return {}
    tiers: dict[str, Tier] = {}
    for _ in range(int(take(float, "tier count"))):
        kind = take(str, "tier class")
        name = take(str, "tier name")
        take(float, "tier xmin")
        take(float, "tier xmax")
        n = int(take(float, f"size of tier {name!r}"))
        items = []
        for _ in range(n):
            if kind == "IntervalTier":
                a, b = take(float, "xmin"), take(float, "xmax")
            elif kind == "TextTier":
                a = b = take(float, "point time")
            else:
                raise CorpusError(f"TextGrid {path}: unknown tier class {kind!r}")
            items.append(Interval(a, b, take(str, f"label in tier {name!r}")))
        tiers[name] = Tier(name, kind, tuple(items))
    return tiers
