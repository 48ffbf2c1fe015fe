"""Helpers shared by the corpus readers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from probekit.corpus.model import Segment, Utterance

#: Labels of aligner tiers that mark silence or non-speech rather than a word or phone.
SILENCE_LABELS = frozenset({"", "sil", "sp", "spn", "<sil>", "<eps>", "h#", "pau", "epi"})

_GENDERS = {"m": "male", "male": "male", "f": "female", "female": "female"}


def normalise_gender(value: object) -> str | None:
    """``"M"``/``"f"``/``"Male"`` -> ``"male"``/``"female"``; other values kept as written."""
    if value is None:
        return None
    s = str(value).strip()
    if not s:
        return None
    return _GENDERS.get(s.lower(), s)


def speech_segments(items: Iterable[tuple[str, float, float]],
                    silence: frozenset[str] = SILENCE_LABELS) -> tuple[Segment, ...]:
    """Segments of ``(symbol, start, end)`` items, leaving out silence labels."""
    return tuple(Segment(s.strip(), a, b) for s, a, b in items if s.strip().lower() not in silence)


def files_with_suffix(root: Path, suffix: str) -> list[Path]:
    """Files under ``root`` whose suffix matches case-insensitively, sorted (TIMIT ships both
    upper- and lower-case copies)."""
    suffix = suffix.lower()
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == suffix)


def find_case_insensitive(folder: Path, name: str) -> Path | None:
    """``folder/name`` matching case-insensitively, or ``None``."""
    exact = folder / name
    if exact.exists():
        return exact
    if not folder.is_dir():
        return None
    low = name.lower()
    for p in folder.iterdir():
        if p.name.lower() == low:
            return p
    return None


def header_seconds(path: Path) -> float | None:
    """Length of an audio file from its header (no decoding); ``None`` when unreadable (the
    validator then reports why)."""
    try:
        import soundfile as sf

        info = sf.info(str(path))
        return round(info.frames / info.samplerate, 6)
    except Exception:  # noqa: BLE001 - any unreadable file is validation's business
        return None


def with_sentence_ids(utts: Iterable[Utterance]) -> list[Utterance]:
    """Every utterance with a ``sentence_id``: its own (the corpus's prompt id) when set, else
    :func:`probekit.text.sentence_key` of its transcript (``None`` only without a transcript;
    ``corpus validate``, ``probe`` and the report warn about those)."""
    from probekit.text import sentence_key

    out = []
    for u in utts:
        if u.sentence_id in (None, "") and u.text.strip():
            u = u.replace(sentence_id=sentence_key(u.text))
        out.append(u)
    return out
