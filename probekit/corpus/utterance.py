"""One utterance of one speaker (:class:`Utterance`): its audio, groups, text and alignments,
and its JSON record form."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from probekit.corpus.audio import AudioSource
from probekit.corpus.segments import Mispronunciation, Segment
from probekit.errors import CorpusError

__all__ = ["Utterance"]


def _frozen_mapping(m: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType({str(k): str(v) for k, v in (m or {}).items()})


@dataclass(frozen=True, eq=False)
class Utterance:
    """One utterance of one speaker.

    Parameters
    ----------
    id : str
        Unique within its corpus.
    audio : AudioSource
    speaker : str
    groups : Mapping[str, str]
        Group labels by attribute, e.g. ``{"accent": "en-gb-scotland", "gender": "female"}``.
    text : str
        Orthographic transcript.
    words, phones : tuple of Segment
        Time alignments in seconds from the start of the utterance (may be empty).
    duration : float or None
        Length in seconds, when known without decoding.
    sentence_id : str or None
        Identifies the prompt when several speakers read the same sentence (content probes
        must not test on sentences seen in training).
    mispronunciations : tuple of Mispronunciation
        Annotated pronunciation errors (seconds from the start of the utterance; may be empty).
    """

    id: str
    audio: AudioSource
    speaker: str
    groups: Mapping[str, str] = field(default_factory=dict)
    text: str = ""
    words: tuple[Segment, ...] = ()
    phones: tuple[Segment, ...] = ()
    duration: float | None = None
    sentence_id: str | None = None
    mispronunciations: tuple[Mispronunciation, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise CorpusError(f"utterance id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.speaker, str) or not self.speaker:
            raise CorpusError(f"utterance {self.id}: speaker must be a non-empty string")
        if not isinstance(self.audio, AudioSource):
            raise CorpusError(f"utterance {self.id}: audio must be an AudioSource")
        object.__setattr__(self, "groups", _frozen_mapping(self.groups))
        object.__setattr__(self, "words", tuple(Segment.from_any(s) for s in self.words))
        object.__setattr__(self, "phones", tuple(Segment.from_any(s) for s in self.phones))
        object.__setattr__(self, "mispronunciations",
                           tuple(Mispronunciation.from_any(m) for m in self.mispronunciations))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Utterance):
            return NotImplemented
        return self.to_dict() == other.to_dict() and self.audio == other.audio

    __hash__ = None  # type: ignore[assignment]

    def group(self, attribute: str) -> str:
        """This utterance's label for ``attribute`` (``CorpusError`` naming it if missing)."""
        try:
            return self.groups[attribute]
        except KeyError:
            raise CorpusError(
                f"utterance {self.id} has no {attribute!r} label (it has: {sorted(self.groups)})"
            ) from None

    def load_audio(self, root: str | os.PathLike | None = None) -> tuple[np.ndarray, int]:
        """Decoded float32 mono samples and their sample rate (Hz)."""
        try:
            return self.audio.load(root)
        except CorpusError as exc:
            raise CorpusError(f"utterance {self.id}: {exc}") from exc

    def replace(self, **changes: Any) -> "Utterance":
        """A copy with some fields changed (records are immutable)."""
        return replace(self, **changes)

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-ready dict. In-memory audio cannot be serialised (``CorpusError``)."""
        if self.audio.path is None:
            raise CorpusError(
                f"utterance {self.id}: in-memory audio cannot be written to a manifest; "
                "write it to a file first"
            )
        audio: dict[str, Any] = {"path": self.audio.path}
        if self.audio.sample_rate is not None:
            audio["sample_rate"] = self.audio.sample_rate
        if self.audio.offset:
            audio["offset"] = self.audio.offset
        if self.audio.duration is not None:
            audio["duration"] = self.audio.duration
        d: dict[str, Any] = {
            "id": self.id,
            "speaker": self.speaker,
            "groups": dict(self.groups),
            "text": self.text,
            "audio": audio,
        }
        if self.duration is not None:
            d["duration"] = round(float(self.duration), 6)
        if self.sentence_id is not None:
            d["sentence_id"] = self.sentence_id
        if self.words:
            d["words"] = [s.to_list() for s in self.words]
        if self.phones:
            d["phones"] = [s.to_list() for s in self.phones]
        if self.mispronunciations:
            d["mispronunciations"] = [m.to_dict() for m in self.mispronunciations]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Utterance":
        """Inverse of :meth:`to_dict`; raises ``CorpusError`` naming the bad field."""
        from probekit.schema import check_value

        if not isinstance(d, Mapping):
            raise CorpusError(f"an utterance record must be a JSON object, found "
                              f"{type(d).__name__} {d!r:.60}")
        uid = d.get("id", "<no id>")
        groups = d.get("groups") or {}
        if not isinstance(groups, Mapping):
            raise CorpusError(f"utterance {uid}: field 'groups' must be an object of "
                              f"attribute: label, found {type(groups).__name__} {groups!r:.60}")
        for attr, label in groups.items():
            if isinstance(label, bool) or not isinstance(label, (str, int, float)):
                raise CorpusError(f"utterance {uid}: label groups.{attr} must be a string, found "
                                  f"{type(label).__name__} {label!r:.60}")
        for key in ("text", "sentence_id"):
            if d.get(key) is not None:
                check_value(d[key], "str", f"field {key!r}", f"utterance {uid}", CorpusError)
        for key in ("id", "speaker", "audio"):
            if key not in d:
                raise CorpusError(f"utterance {uid}: missing required field {key!r}")
        audio = d["audio"]
        if isinstance(audio, str):
            audio = {"path": audio}
        if not isinstance(audio, Mapping) or "path" not in audio:
            raise CorpusError(f"utterance {uid}: field 'audio' needs a 'path'")
        try:
            return cls(
                id=str(d["id"]),
                speaker=str(d["speaker"]),
                groups=groups,
                text=d.get("text") or "",
                audio=AudioSource(
                    path=str(audio["path"]),
                    sample_rate=audio.get("sample_rate"),
                    offset=float(audio.get("offset", 0.0)),
                    duration=audio.get("duration"),
                ),
                words=tuple(d.get("words") or ()),
                phones=tuple(d.get("phones") or ()),
                duration=d.get("duration"),
                sentence_id=d.get("sentence_id"),
                mispronunciations=tuple(d.get("mispronunciations") or ()),
            )
        except CorpusError as exc:
            raise CorpusError(f"utterance {uid}: {exc}") from exc
        except (TypeError, ValueError, KeyError) as exc:
            raise CorpusError(f"utterance {uid}: malformed field ({exc})") from exc
