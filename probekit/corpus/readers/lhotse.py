"""lhotse manifests -> Corpus (``pip install probekit[lhotse]``).

One utterance per supervision segment. Field mapping:

- ``id`` <- ``supervision.id``; ``speaker`` <- ``supervision.speaker``; ``text`` <- ``text``;
- audio <- the recording's file source, sliced at the supervision's span (for a cut,
  ``cut.start + supervision.start``);
- groups <- ``gender`` (normalised to ``male``/``female``) and every string-valued entry of
  ``supervision.custom`` (lhotse's recipes put ``accent``, ``region``, ``native_lang``... there);
  ``attributes=[...]`` picks exactly which fields instead (numbers such as ``age`` are then
  written as strings);
- words/phones <- ``supervision.alignment["word"]`` / ``["phone"]`` (lhotse's
  ``AlignmentItem(symbol, start, duration)``, whose start is relative to the *recording*),
  converted to ``(symbol, start, end)`` relative to the utterance.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from probekit.corpus.model import AudioSource, Corpus, Segment, Utterance
from probekit.corpus.readers import register_reader
from probekit.corpus.readers._common import normalise_gender, with_sentence_ids
from probekit.errors import CorpusError

__all__ = ["from_lhotse", "read_lhotse", "utterance_from_supervision"]

_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
# Keys that identify each lhotse manifest type in its first JSON record.
_MANIFEST_KEYS = {"cuts": {"supervisions"}, "recordings": {"sources"},
                  "supervisions": {"recording_id"}}
_ALIGNMENT_KINDS = {"words": ("word", "words"), "phones": ("phone", "phones", "phoneme")}


def _import_lhotse():
    try:
        import lhotse
    except ImportError as exc:  # an optional dependency
        raise CorpusError(
            f"reading lhotse manifests needs lhotse: pip install 'probekit[lhotse]' ({exc})"
        ) from exc
    return lhotse


def _manifest_type(path: Path) -> str | None:
    if not path.is_file() or not path.name.endswith(_SUFFIXES):
        return None
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            rec = json.loads(f.readline())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, EOFError):
        return None
    if isinstance(rec, list):  # old-style JSON arrays
        rec = rec[0] if rec else {}
    if not isinstance(rec, dict):
        return None
    for kind, keys in _MANIFEST_KEYS.items():
        if keys <= set(rec):
            return kind
    return None


def _manifests_in(path: Path) -> dict[str, list[Path]]:
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    found: dict[str, list[Path]] = {"cuts": [], "recordings": [], "supervisions": []}
    for f in files:
        kind = _manifest_type(f)
        if kind is not None:
            found[kind].append(f)
    return found


def _detect(path: Path) -> bool:
    found = _manifests_in(path)
    return bool(found["cuts"] or (found["recordings"] and found["supervisions"]))


def _int_or_none(x: Any) -> int | None:
    try:
        return None if x is None else int(x)
    except (TypeError, ValueError):
        return None


def _audio_path(recording: Any, channel: Any) -> str:
    sources = list(recording.sources)
    if len(sources) > 1:  # one file per channel: pick the supervision's
        want = {channel} if isinstance(channel, int) else set(channel or [0])
        sources = [s for s in sources if want & set(s.channels)]
    if len(sources) != 1:
        raise CorpusError(f"lhotse recording {recording.id}: cannot pick one audio source "
                          f"for channel {channel!r}")
    if sources[0].type != "file":
        raise CorpusError(f"lhotse recording {recording.id}: audio source type "
                          f"{sources[0].type!r} is not supported (only 'file')")
    for t in recording.transforms or []:
        name = t.get("name") if isinstance(t, dict) else type(t).__name__
        if name != "Resample":  # resampling is harmless: encoders resample anyway
            raise CorpusError(f"lhotse recording {recording.id}: audio transform {name!r} "
                              "cannot be represented; save the transformed audio first")
    return str(sources[0].source)


def _groups(sup: Any, attributes: Sequence[str] | None) -> dict[str, str]:
    custom = dict(sup.custom or {})
    if attributes is None:
        groups = {k: v.strip() for k, v in custom.items() if isinstance(v, str) and v.strip()}
        gender = normalise_gender(sup.gender)
        if gender:
            groups["gender"] = gender
        return groups
    groups = {}
    for attr in attributes:
        value = getattr(sup, attr, None) if attr in ("gender", "language") else custom.get(attr)
        if attr == "gender":
            value = normalise_gender(value)
        if value is not None and str(value).strip():
            groups[attr] = str(value).strip()
    return groups


def _alignment(sup: Any, field: str, origin: float) -> tuple[Segment, ...]:
    ali = sup.alignment or {}
    for key in _ALIGNMENT_KINDS[field]:
        if key in ali:
            try:
                return tuple(
                    Segment(str(it.symbol), round(it.start - origin, 6),
                            round(it.start - origin + it.duration, 6))
                    for it in ali[key]
                )
            except CorpusError as exc:
                raise CorpusError(f"lhotse supervision {sup.id}: alignment {key!r}: {exc}") from None
    return ()


def utterance_from_supervision(sup: Any, recording: Any, *, cut_start: float = 0.0,
                               attributes: Sequence[str] | None = None) -> Utterance:
    """One :class:`Utterance` from a lhotse ``SupervisionSegment`` and its ``Recording``.

    ``cut_start`` (seconds) is the start of the enclosing cut in the recording, since a cut's
    supervision times are relative to the cut.
    """
    if not sup.speaker:
        raise CorpusError(f"lhotse supervision {sup.id}: field 'speaker' is empty")
    origin = round(cut_start + sup.start, 6)
    custom = sup.custom or {}
    sentence = custom.get("sentence_id")
    return Utterance(
        id=str(sup.id),
        audio=AudioSource(path=_audio_path(recording, sup.channel), offset=origin,
                          duration=float(sup.duration),
                          sample_rate=_int_or_none(getattr(recording, "sampling_rate", None))),
        speaker=str(sup.speaker),
        groups=_groups(sup, attributes),
        text=(sup.text or "").strip(),
        words=_alignment(sup, "words", origin),
        phones=_alignment(sup, "phones", origin),
        duration=float(sup.duration),
        sentence_id=None if sentence is None else str(sentence),
    )


def from_lhotse(recordings: Any = None, supervisions: Any = None, *, cuts: Any = None,
                attributes: Sequence[str] | None = None, name: str = "lhotse") -> Corpus:
    """Build a Corpus from a lhotse ``RecordingSet`` + ``SupervisionSet`` or a ``CutSet``.

    Parameters
    ----------
    recordings, supervisions : lhotse.RecordingSet, lhotse.SupervisionSet
    cuts : lhotse.CutSet
        Instead of the two above.
    attributes : sequence of str or None
        Group attributes to take (``gender``, ``language`` or keys of ``custom``); ``None``:
        gender and every string-valued custom field.
    """
    utts: list[Utterance] = []
    if cuts is not None:
        for cut in cuts:
            recording = getattr(cut, "recording", None)
            if recording is None:
                raise CorpusError(f"lhotse cut {cut.id} has no single recording "
                                  f"({type(cut).__name__} is not supported)")
            utts.extend(utterance_from_supervision(s, recording, cut_start=cut.start,
                                                   attributes=attributes)
                        for s in cut.supervisions)
    elif recordings is not None and supervisions is not None:
        by_id = _unique(recordings, "recording")
        _unique(supervisions, "supervision")
        for sup in supervisions:
            recording = by_id.get(sup.recording_id)
            if recording is None:  # (lhotse's own lookup raises StopIteration here)
                raise CorpusError(f"lhotse supervision {sup.id}: recording "
                                  f"{sup.recording_id!r} is not in the RecordingSet")
            utts.append(utterance_from_supervision(sup, recording, attributes=attributes))
    else:
        raise CorpusError("from_lhotse needs a CutSet or both a RecordingSet and a SupervisionSet")
    return Corpus(with_sentence_ids(utts), name=name)


def _unique(items: Iterable, what: str) -> dict:
    """``{id: item}``; an id given twice is a ``CorpusError`` naming it."""
    out: dict = {}
    for item in items:
        if item.id in out:
            raise CorpusError(f"lhotse {what} id {item.id!r} appears twice")
        out[item.id] = item
    return out


def _load_all(lhotse: Any, files: Iterable[Path]) -> list:
    items: list = []
    for f in files:
        try:
            items.extend(lhotse.load_manifest(f))
        except Exception as exc:  # lhotse raises many types for malformed manifests
            raise CorpusError(f"cannot read lhotse manifest {f}: {exc}") from exc
    return items


@register_reader("lhotse", _detect)
def read_lhotse(path: str | os.PathLike, *, attributes: Sequence[str] | None = None,
                name: str | None = None) -> Corpus:
    """lhotse manifests: a CutSet file, or a folder of cuts or recordings+supervisions files."""
    lhotse = _import_lhotse()
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"lhotse manifest not found: {p}")
    found = _manifests_in(p)
    name = name or (p.parent.name if p.is_file() else p.name)
    if found["cuts"]:
        files, cuts = found["cuts"], _load_all(lhotse, found["cuts"])
    elif found["recordings"] and found["supervisions"]:
        # Plain lists: lhotse's sets index by id and fail obscurely on unknown or repeated ids.
        files = found["recordings"] + found["supervisions"]
        recs, sups = _load_all(lhotse, found["recordings"]), _load_all(lhotse, found["supervisions"])
    else:
        raise CorpusError(f"{p}: no lhotse CutSet, or RecordingSet and SupervisionSet, found")
    try:  # a bad record is named with the files it came from
        if found["cuts"]:
            _unique(cuts, "cut")
            return from_lhotse(cuts=lhotse.CutSet.from_cuts(cuts), attributes=attributes,
                               name=name)
        return from_lhotse(recs, sups, attributes=attributes, name=name)
    except CorpusError as exc:
        raise CorpusError(f"{', '.join(str(f) for f in files)}: {exc}") from None
