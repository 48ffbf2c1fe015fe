"""The corpus data model: utterances with speakers, group labels, text and time alignments.

Records are immutable and times are in seconds everywhere. An :class:`Utterance` describes its
audio (a file, optionally a slice of it, or an in-memory array) rather than holding decoded
samples, so a corpus of thousands of utterances is cheap to pass around.

A :class:`Corpus` is saved as JSONL (one utterance per line) with audio paths stored relative
to the manifest's folder, so a corpus folder can be moved or shared as a whole.

This module holds the collection only. The records live in their own modules
(:mod:`probekit.corpus.segments`, :mod:`probekit.corpus.audio`,
:mod:`probekit.corpus.utterance`, :mod:`probekit.corpus.intersections`) and are re-exported
here; the JSONL writer and reader sit beside the CSV manifest reader
(:mod:`probekit.corpus.readers.manifest`); the per-group summary is
:func:`probekit.corpus.describe.describe`. There is no ``Corpus.split``: speaker-disjoint
splits are made where they are used, on the store's rows (:mod:`probekit.probes.splits`) and
for fine-tuning (``training/splits.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path


from probekit.corpus.audio import AudioSource
from probekit.corpus.intersections import (
    INTERSECTION_SEP,
    MIN_INTERSECTION_SPEAKERS,
    intersection_name,
    intersection_parts,
)
from probekit.corpus.segments import MISPRONUNCIATION_ERRORS, Mispronunciation, Segment
from probekit.corpus.utterance import Utterance
from probekit.errors import CorpusError

__all__ = ["Segment", "Mispronunciation", "AudioSource", "Utterance", "Corpus", "MANIFEST_NAME",
           "INTERSECTION_SEP", "MIN_INTERSECTION_SPEAKERS", "intersection_parts",
           "intersection_name"]

#: File name of a corpus manifest inside a corpus folder.
MANIFEST_NAME = "manifest.jsonl"


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
        """Per-group summary as a ``pandas.DataFrame``: see :func:`probekit.corpus.describe.describe`.
        """
        from probekit.corpus.describe import describe

        return describe(self, attribute)

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

    # -- I/O -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write a JSONL manifest. ``path`` is a file or a folder (``manifest.jsonl`` inside).

        Audio paths are written relative to the manifest's folder when they lie beneath it.
        The write is atomic (temporary file + rename). See
        :func:`probekit.corpus.readers.manifest.write_jsonl`.
        """
        from probekit.corpus.readers.manifest import write_jsonl

        return write_jsonl(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, name: str | None = None) -> "Corpus":
        """Read a JSONL manifest (a file, or a folder holding ``manifest.jsonl``).

        Raises ``CorpusError`` naming the line for malformed JSON or records. See
        :func:`probekit.corpus.readers.manifest.load_jsonl`.
        """
        from probekit.corpus.readers.manifest import load_jsonl

        return load_jsonl(path, name=name)
