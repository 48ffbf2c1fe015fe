"""Intersectional group attributes: ``accent*gender`` names, their parts, and the fewest
speakers an intersectional group may have."""

from __future__ import annotations

from collections.abc import Sequence

from probekit.errors import CorpusError

__all__ = ["INTERSECTION_SEP", "MIN_INTERSECTION_SPEAKERS", "intersection_parts",
           "intersection_name"]

#: Joins attributes (``accent*gender``) and their labels (``es*female``) of an intersection.
INTERSECTION_SEP = "*"
#: Fewest speakers an intersectional group may have. A content probe holds out half of each
#: group's speakers, and a speaker-level interval needs at least two speakers on each side of
#: that split, so 2 + 2 = 4; smaller intersections are refused (not silently dropped), with a
#: message naming them.
MIN_INTERSECTION_SPEAKERS = 4


def intersection_parts(attribute: str) -> list[str]:
    """``"accent*gender"`` -> ``["accent", "gender"]``; a plain attribute -> ``[attribute]``."""
    parts = [a.strip() for a in str(attribute).split(INTERSECTION_SEP)]
    if any(not a for a in parts):
        raise CorpusError(f"malformed group attribute {attribute!r}: write e.g. 'accent*gender'")
    if len(set(parts)) != len(parts):
        raise CorpusError(f"group attribute {attribute!r} names an attribute twice")
    return parts


def intersection_name(attributes: Sequence[str]) -> str:
    """``["accent", "gender"]`` -> ``"accent*gender"``."""
    return INTERSECTION_SEP.join(attributes)
