"""Time-span records of an utterance: :class:`Segment` (a word or phone) and
:class:`Mispronunciation` (an annotated pronunciation error). Times are in seconds."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probekit.errors import CorpusError

__all__ = ["Segment", "Mispronunciation", "MISPRONUNCIATION_ERRORS"]


@dataclass(frozen=True)
class Segment:
    """A labelled time span: a word or a phone.

    Parameters
    ----------
    symbol : str
        The word or phone label.
    start, end : float
        Start and end time in seconds from the beginning of the utterance; ``end >= start``.
    """

    symbol: str
    start: float
    end: float

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str):
            raise CorpusError(f"segment symbol must be a string, got {self.symbol!r}")
        for name in ("start", "end"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise CorpusError(f"segment {self.symbol!r}: {name} must be a finite number, got {v!r}")
        if self.end < self.start:
            raise CorpusError(
                f"segment {self.symbol!r}: end {self.end} s is before start {self.start} s"
            )

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start

    def to_list(self) -> list:
        return [self.symbol, round(float(self.start), 6), round(float(self.end), 6)]

    @classmethod
    def from_any(cls, item: Any) -> "Segment":
        """Build from a ``Segment``, a ``(symbol, start, end)`` sequence or a mapping."""
        if isinstance(item, Segment):
            return item
        if isinstance(item, Mapping):
            return cls(str(item["symbol"]), float(item["start"]), float(item["end"]))
        symbol, start, end = item
        return cls(str(symbol), float(start), float(end))


#: Error types of a :class:`Mispronunciation`.
MISPRONUNCIATION_ERRORS = ("substitution", "deletion", "addition")


@dataclass(frozen=True)
class Mispronunciation:
    """A human-annotated pronunciation error over a time span (e.g. L2-ARCTIC's annotations).

    The phone tier of an utterance keeps the canonical (expected) phone as its label; this
    record says what was heard instead.

    Parameters
    ----------
    start, end : float
        Seconds from the beginning of the utterance; ``end >= start``.
    canonical : str or None
        Expected phone (``None`` for an addition: nothing was expected).
    perceived : str or None
        Phone the annotator heard (``None`` for a deletion).
    error : str
        One of ``"substitution"``, ``"deletion"``, ``"addition"``.
    """

    start: float
    end: float
    canonical: str | None
    perceived: str | None
    error: str

    def __post_init__(self) -> None:
        if self.error not in MISPRONUNCIATION_ERRORS:
            raise CorpusError(
                f"mispronunciation error type must be one of {MISPRONUNCIATION_ERRORS}, "
                f"got {self.error!r}"
            )
        # Reuse Segment's checks of the time span (finite, end >= start).
        Segment(self.canonical or "", self.start, self.end)

    def to_dict(self) -> dict:
        return {"start": round(float(self.start), 6), "end": round(float(self.end), 6),
                "canonical": self.canonical, "perceived": self.perceived, "error": self.error}

    @classmethod
    def from_any(cls, item: Any) -> "Mispronunciation":
        if isinstance(item, Mispronunciation):
            return item
        if not isinstance(item, Mapping):
            raise CorpusError(f"a mispronunciation must be a mapping, got {item!r}")
        return cls(float(item["start"]), float(item["end"]), item.get("canonical"),
                   item.get("perceived"), str(item["error"]))
