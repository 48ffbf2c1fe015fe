"""The corpus data model: utterances with speakers, group labels, text and time alignments.

Records are immutable and times are in seconds everywhere. An :class:`Utterance` describes its
audio (a file, optionally a slice of it, or an in-memory array) rather than holding decoded
samples, so a corpus of thousands of utterances is cheap to pass around.

A :class:`Corpus` is saved as JSONL (one utterance per line) with audio paths stored relative
to the manifest's folder, so a corpus folder can be moved or shared as a whole.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from probekit.errors import CorpusError

__all__ = ["Segment", "Mispronunciation", "AudioSource", "Utterance", "Corpus", "MANIFEST_NAME",
           "INTERSECTION_SEP", "MIN_INTERSECTION_SPEAKERS", "intersection_parts",
           "intersection_name"]

#: File name of a corpus manifest inside a corpus folder.
MANIFEST_NAME = "manifest.jsonl"

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


@dataclass(frozen=True, eq=False)
class AudioSource:
    """Where an utterance's samples come from.

    Exactly one of ``path`` and ``array`` is set. A path may point into a longer recording
    with ``offset`` and ``duration`` (seconds). Arrays are float32 mono.

    Parameters
    ----------
    path : str or None
        Audio file (any format ``soundfile`` reads). Relative paths are resolved against the
        corpus root when loading.
    array : numpy.ndarray or None
        Samples, shape ``(n_samples,)``.
    sample_rate : int or None
        Hz. Required for arrays; read from the file header for paths when ``None``.
    offset, duration : float
        Slice of the file to use, in seconds (``duration=None``: to the end).
    """

    path: str | None = None
    array: np.ndarray | None = None
    sample_rate: int | None = None
    offset: float = 0.0
    duration: float | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.array is None):
            raise CorpusError("an AudioSource needs exactly one of `path` and `array`")
        if self.array is not None:
            if self.sample_rate is None:
                raise CorpusError("an in-memory AudioSource needs its sample_rate")
            arr = np.asarray(self.array)
            arr.setflags(write=False)
            object.__setattr__(self, "array", arr)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AudioSource):
            return NotImplemented
        same_array = (self.array is None and other.array is None) or (
            self.array is not None
            and other.array is not None
            and self.array.shape == other.array.shape
            and bool(np.array_equal(self.array, other.array))
        )
        return (
            self.path == other.path
            and same_array
            and self.sample_rate == other.sample_rate
            and self.offset == other.offset
            and self.duration == other.duration
        )

    __hash__ = None  # type: ignore[assignment]

    def resolve(self, root: str | os.PathLike | None) -> Path:
        """Absolute path of the file (``CorpusError`` for in-memory audio)."""
        if self.path is None:
            raise CorpusError("in-memory audio has no path")
        p = Path(self.path)
        if not p.is_absolute() and root is not None:
            p = Path(root) / p
        return p

    def load(self, root: str | os.PathLike | None = None) -> tuple[np.ndarray, int]:
        """Decode to float32 mono.

        Returns
        -------
        samples : numpy.ndarray, shape (n_samples,), float32
        sample_rate : int, Hz
        """
        if self.array is not None:
            samples, sr = np.asarray(self.array), int(self.sample_rate)  # type: ignore[arg-type]
            start = int(round(self.offset * sr))
            stop = None if self.duration is None else start + int(round(self.duration * sr))
            samples = samples[start:stop]
        else:
            import soundfile as sf

            path = self.resolve(root)
            if not path.exists():
                raise CorpusError(f"audio file not found: {path}")
            try:
                info = sf.info(str(path))
                sr = info.samplerate
                start = int(round(self.offset * sr))
                frames = -1 if self.duration is None else int(round(self.duration * sr))
                samples, sr = sf.read(str(path), start=start, frames=frames, dtype="float32",
                                      always_2d=True)
            except CorpusError:
                raise
            except Exception as exc:  # soundfile raises several types for corrupt files
                raise CorpusError(f"cannot decode audio file {path}: {exc}") from exc
            samples = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
        return np.ascontiguousarray(samples, dtype=np.float32), int(sr)


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


class Corpus(Sequence[Utterance]):
    """An immutable, ordered collection of utterances with unique ids.

    Parameters
    ----------
    utterances : iterable of Utterance
    root : path or None
        Folder that relative audio paths are resolved against (the manifest's folder).
    name : str
        A short name for reports.
    speaker_rule : str or None
        How the reader inferred speakers from file or folder names (said by ``corpus
        summary`` and checked by ``corpus validate``); ``None`` when the corpus names them.
    """

    def __init__(self, utterances: Iterable[Utterance], root: str | os.PathLike | None = None,
                 name: str = "corpus", speaker_rule: str | None = None) -> None:
        self._utts = tuple(utterances)
        self.root = None if root is None else Path(root)
        self.name = name
        self.speaker_rule = speaker_rule
        self._index: dict[str, int] = {}
        for i, u in enumerate(self._utts):
            if not isinstance(u, Utterance):
                raise CorpusError(f"item {i} of the corpus is not an Utterance: {u!r}")
            if u.id in self._index:
                raise CorpusError(f"duplicate utterance id {u.id!r}")
            self._index[u.id] = i

    # -- sequence protocol ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._utts)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self._derive(self._utts[i])
        return self._utts[i]

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self._utts)

    def __repr__(self) -> str:
        return f"Corpus(name={self.name!r}, utterances={len(self)}, speakers={len(self.speakers)})"

    def get(self, utt_id: str) -> Utterance:
        """The utterance with this id (``CorpusError`` if absent)."""
        try:
            return self._utts[self._index[utt_id]]
        except KeyError:
            raise CorpusError(f"no utterance with id {utt_id!r} in corpus {self.name!r}") from None

    def _derive(self, utts: Iterable[Utterance]) -> "Corpus":
        return Corpus(utts, root=self.root, name=self.name, speaker_rule=self.speaker_rule)

    # -- views ----------------------------------------------------------------------------
    @property
    def speakers(self) -> list[str]:
        """Speaker ids in order of first appearance."""
        return list(dict.fromkeys(u.speaker for u in self._utts))

    @property
    def attributes(self) -> list[str]:
        """Group attributes present on any utterance (e.g. ``["accent", "gender"]``)."""
        return sorted({k for u in self._utts for k in u.groups})

    def groups(self, attribute: str) -> list[str]:
        """Sorted distinct labels of ``attribute``; every utterance must carry it."""
        return sorted({u.group(attribute) for u in self._utts})

    def speaker_groups(self, attribute: str) -> dict[str, str]:
        """Map speaker -> label of ``attribute``; a speaker with two labels is an error."""
        out: dict[str, str] = {}
        for u in self._utts:
            g = u.group(attribute)
            if out.setdefault(u.speaker, g) != g:
                raise CorpusError(
                    f"speaker {u.speaker} has two {attribute!r} labels: {out[u.speaker]!r} and "
                    f"{g!r} (utterance {u.id})"
                )
        return out

    def filter(self, *, speakers: Iterable[str] | None = None, ids: Iterable[str] | None = None,
               **groups: str | Iterable[str]) -> "Corpus":
        """Utterances matching all criteria, e.g. ``filter(accent="es", gender="female")``.

        A group value may be one label or several. Unknown speakers or ids are an error
        (a typo must not silently give an empty corpus).
        """
        keep = list(self._utts)
        if speakers is not None:
            wanted = set(speakers)
            missing = wanted - set(self.speakers)
            if missing:
                raise CorpusError(f"unknown speaker(s): {sorted(missing)}")
            keep = [u for u in keep if u.speaker in wanted]
        if ids is not None:
            wanted_ids = set(ids)
            missing = wanted_ids - set(self._index)
            if missing:
                raise CorpusError(f"unknown utterance id(s): {sorted(missing)[:10]}")
            keep = [u for u in keep if u.id in wanted_ids]
        for attr, value in groups.items():
            values = {value} if isinstance(value, str) else set(value)
            known = set(self.groups(attr))
            if values - known:
                raise CorpusError(
                    f"unknown {attr!r} label(s) {sorted(values - known)}; known: {sorted(known)}"
                )
            keep = [u for u in keep if u.groups[attr] in values]
        return self._derive(keep)

    def summary(self, attribute: str | None = None):
        """Per-group summary as a ``pandas.DataFrame``.

        Columns: ``speakers``, ``utterances``, ``hours``, ``phones`` (aligned phone tokens),
        ``words``; one row per label of ``attribute`` plus an ``ALL`` row (one row only when
        ``attribute`` is ``None``). Durations that are unknown count as zero and are reported in
        ``unknown_duration``.
        """
        import pandas as pd

        def row(utts: Sequence[Utterance]) -> dict:
            return {
                "speakers": len({u.speaker for u in utts}),
                "utterances": len(utts),
                "hours": sum(u.duration or 0.0 for u in utts) / 3600.0,
                "phones": sum(len(u.phones) for u in utts),
                "words": sum(len(u.words) for u in utts),
                "unknown_duration": sum(u.duration is None for u in utts),
            }

        rows = {}
        if attribute is not None:
            for g in self.groups(attribute):
                rows[g] = row([u for u in self._utts if u.groups[attribute] == g])
        rows["ALL"] = row(self._utts)
        df = pd.DataFrame.from_dict(rows, orient="index")
        df.index.name = attribute or "corpus"
        return df

    def with_intersection(self, attribute: str | Sequence[str], *,
                          min_speakers: int = MIN_INTERSECTION_SPEAKERS) -> "Corpus":
        """This corpus with a derived group attribute combining several, e.g. ``accent*gender``.

        Every utterance gets ``groups["accent*gender"] = "es*female"`` (labels joined in the
        order given), so the grid, the analysis and the report treat the intersection as an
        ordinary group attribute. Every combined attribute must be on every utterance.

        Raises
        ------
        CorpusError
            When an intersection has fewer than ``min_speakers`` speakers (default
            :data:`MIN_INTERSECTION_SPEAKERS`); the message names every such group and the rule.
        """
        parts = intersection_parts(attribute) if isinstance(attribute, str) else list(attribute)
        name = intersection_name(parts)
        if len(parts) < 2:
            raise CorpusError(f"an intersection combines two or more attributes, got {name!r}")
        labels = {u.id: INTERSECTION_SEP.join(u.group(a) for a in parts) for u in self._utts}
        speakers: dict[str, set[str]] = {}
        for u in self._utts:
            speakers.setdefault(labels[u.id], set()).add(u.speaker)
        small = {g: len(s) for g, s in sorted(speakers.items()) if len(s) < min_speakers}
        if small:
            raise CorpusError(
                f"intersection {name!r} has group(s) with fewer than {min_speakers} speakers: "
                + ", ".join(f"{g} ({n})" for g, n in small.items())
                + f"; each intersectional group needs at least {min_speakers} speakers (half are "
                "held out, and a speaker-level interval needs two on each side). Merge labels "
                "or leave the attribute out")
        return self._derive(u.replace(groups={**u.groups, name: labels[u.id]}) for u in self._utts)

    def split(self, test_fraction: float = 0.25, *, stratify: str | None = None, seed: int = 0,
              min_test_speakers: int = 1) -> tuple["Corpus", "Corpus"]:
        """Speaker-disjoint train/test split.

        Within each label of ``stratify`` (or the whole corpus), speakers are shuffled with
        ``seed`` and ``max(min_test_speakers, round(test_fraction * n))`` go to test, keeping
        at least one in train, so every group is represented on both sides.

        Raises
        ------
        CorpusError
            If a group has fewer than ``min_test_speakers + 1`` speakers (it cannot appear on
            both sides of a speaker-disjoint split); the message names the group.
        """
        if not 0.0 < test_fraction < 1.0:
            raise CorpusError(f"test_fraction must be in (0, 1), got {test_fraction}")
        rng = np.random.default_rng(seed)
        if stratify is None:
            strata = {"ALL": self.speakers}
        else:
            spk_group = self.speaker_groups(stratify)
            strata = {}
            for spk, g in spk_group.items():
                strata.setdefault(g, []).append(spk)
        test_speakers: set[str] = set()
        for g in sorted(strata):
            spks = sorted(strata[g])
            if len(spks) < min_test_speakers + 1:
                raise CorpusError(
                    f"group {g!r} has {len(spks)} speaker(s); a speaker-disjoint split needs at "
                    f"least {min_test_speakers + 1}"
                )
            n_test = min(len(spks) - 1, max(min_test_speakers, int(round(test_fraction * len(spks)))))
            test_speakers.update(rng.permutation(spks)[:n_test].tolist())
        train = self._derive(u for u in self._utts if u.speaker not in test_speakers)
        test = self._derive(u for u in self._utts if u.speaker in test_speakers)
        return train, test

    # -- I/O -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write a JSONL manifest. ``path`` is a file or a folder (``manifest.jsonl`` inside).

        Audio paths are written relative to the manifest's folder when they lie beneath it.
        The write is atomic (temporary file + rename).
        """
        path = Path(path)
        if path.suffix != ".jsonl":
            path = path / MANIFEST_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = path.parent.resolve()
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for u in self._utts:
                d = u.to_dict()
                p = u.audio.resolve(self.root)
                if p.is_absolute():
                    try:
                        p = p.resolve().relative_to(folder)
                    except ValueError:  # outside the corpus folder: keep it absolute
                        pass
                d["audio"]["path"] = p.as_posix()
                f.write(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, name: str | None = None) -> "Corpus":
        """Read a JSONL manifest (a file, or a folder holding ``manifest.jsonl``).

        Raises ``CorpusError`` naming the line for malformed JSON or records.
        """
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        if not path.exists():
            raise CorpusError(f"manifest not found: {path}")
        from probekit.schema import read_utf8

        utts = []
        text = read_utf8(path, CorpusError)  # a non-UTF-8 file: one line naming it
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            try:
                utts.append(Utterance.from_dict(d))
            except CorpusError as exc:
                raise CorpusError(f"{path}:{lineno}: {exc}") from None
        return cls(utts, root=path.parent, name=name or path.parent.name)
