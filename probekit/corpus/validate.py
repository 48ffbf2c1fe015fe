"""Corpus validation: find every utterance that would break a probing run, and say why.

Rules (``rule`` id, severity): errors drop the utterance in :meth:`ValidationReport.clean_corpus`,
warnings are only reported.

=========================  ========  =====================================================
rule                       severity  meaning
=========================  ========  =====================================================
audio_missing              error     the audio file does not exist
audio_format               error     the file's format is not one ``soundfile`` decodes
audio_corrupt              error     the file exists but cannot be decoded
audio_empty                error     zero samples (or a slice past the end of the file)
audio_nan                  error     NaN or infinite samples
audio_slice                error     ``offset + duration`` runs past the end of the file
duration_mismatch          warning   ``Utterance.duration`` differs from the audio's length
sample_rate_mismatch       warning   the manifest's ``sample_rate`` differs from the file's
channels_mismatch          warning   the file has more than one channel (probekit's audio is mono)
text_empty                 error     empty transcript
alignment_past_end         error     a word/phone ends after the audio (or starts before 0)
alignment_overlap          error     two words (or two phones) overlap
group_missing              error     no label for a checked attribute
speaker_label_conflict     error     a speaker's label differs from their other utterances
group_too_small            error     a group has fewer than ``min_speakers_per_group``
                                     speakers (no speaker-disjoint split can hold it)
=========================  ========  =====================================================

Two corpus-level warnings (``speaker_rule``, ``audio_duplicate``) are described in
:mod:`probekit.corpus.checks`.

The two format warnings name the utterance and both values. They are warnings, not errors,
because extraction still works: :meth:`~probekit.corpus.AudioSource.load` decodes at the
*file's* rate and averages the channels to mono, and every encoder resamples to its own rate
(16 kHz for Whisper and wav2vec 2.0). But a manifest that disagrees with its audio usually
means the wrong files, or a conversion step that was skipped, so it is reported.

Time checks allow :data:`TIME_TOLERANCE` seconds: aligners round to 10 ms frames and corpora
round times to milliseconds, so differences below two frames are not errors.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from probekit.corpus.checks import CHECK_RULES, corpus_checks
from probekit.corpus.model import Corpus, Segment, Utterance
from probekit.errors import CorpusError

__all__ = ["Problem", "ValidationReport", "validate_corpus", "RULES", "TIME_TOLERANCE"]

#: Seconds by which alignments may pass the audio's end or overlap (two 10 ms frames).
TIME_TOLERANCE = 0.02

RULES = {
    "audio_missing": "error", "audio_format": "error", "audio_corrupt": "error",
    "audio_empty": "error", "audio_nan": "error", "audio_slice": "error",
    "duration_mismatch": "warning", "sample_rate_mismatch": "warning",
    "channels_mismatch": "warning", "text_empty": "error", "alignment_past_end": "error",
    "alignment_overlap": "error", "group_missing": "error", "speaker_label_conflict": "error",
    "group_too_small": "error", **CHECK_RULES,
}


@dataclass(frozen=True)
class Problem:
    """One finding: which rule, how bad, which utterance and field, and a readable message."""

    rule: str
    severity: str
    utterance: str
    field: str
    message: str


class ValidationReport:
    """Everything :func:`validate_corpus` found.

    Attributes
    ----------
    problems : list of Problem
        In corpus order, per-utterance rules first.
    corpus : Corpus
        The corpus that was checked.
    """

    def __init__(self, corpus: Corpus, problems: Sequence[Problem]) -> None:
        self.corpus = corpus
        self.problems = list(problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    @property
    def dropped(self) -> list[str]:
        """Ids of the utterances :meth:`clean_corpus` leaves out, in corpus order."""
        bad = {p.utterance for p in self.errors}
        return [u.id for u in self.corpus if u.id in bad]

    def frame(self):
        """Problems as a ``pandas.DataFrame`` (columns rule, severity, utterance, field,
        message)."""
        import pandas as pd

        return pd.DataFrame([asdict(p) for p in self.problems],
                            columns=["rule", "severity", "utterance", "field", "message"])

    def by_rule(self) -> dict[str, list[Problem]]:
        """Problems grouped by rule id, rules in :data:`RULES` order."""
        out: dict[str, list[Problem]] = {}
        for rule in RULES:
            hits = [p for p in self.problems if p.rule == rule]
            if hits:
                out[rule] = hits
        return out

    def clean_corpus(self) -> tuple[Corpus, list[Problem]]:
        """The corpus without utterances that have an error, and the errors that dropped them."""
        bad = set(self.dropped)
        return self.corpus.filter(ids=[u.id for u in self.corpus if u.id not in bad]), self.errors

    def __repr__(self) -> str:
        return (f"ValidationReport(utterances={len(self.corpus)}, errors={len(self.errors)}, "
                f"warnings={len(self.warnings)}, dropped={len(self.dropped)})")


def _audio_problems(u: Utterance, root: Path | None) -> tuple[list[Problem], float | None]:
    """Audio problems and the audio's length in seconds (None when it cannot be read)."""
    import soundfile as sf

    def p(rule: str, msg: str) -> Problem:
        return Problem(rule, RULES[rule], u.id, "audio", msg)

    src = u.audio
    if src.path is not None:
        path = src.resolve(root)
        if not path.is_file():
            return [p("audio_missing", f"audio file not found: {path}")], None
        try:
            info = sf.info(str(path))
        except Exception as exc:  # libsndfile's messages distinguish format from corruption
            ext = path.suffix.lstrip(".").upper()
            unknown = "format" in str(exc).lower() and ext not in sf.available_formats()
            rule = "audio_format" if unknown else "audio_corrupt"
            return [p(rule, f"cannot decode {path}: {exc}")], None
        file_seconds = info.frames / info.samplerate
        fmt: list[Problem] = []
        if src.sample_rate is not None and int(src.sample_rate) != int(info.samplerate):
            fmt.append(Problem("sample_rate_mismatch", RULES["sample_rate_mismatch"], u.id,
                               "audio.sample_rate",
                               f"the manifest says {int(src.sample_rate)} Hz but {path} is "
                               f"{info.samplerate} Hz (extraction decodes at the file's rate "
                               "and resamples to the encoder's)"))
        if info.channels > 1:
            fmt.append(Problem("channels_mismatch", RULES["channels_mismatch"], u.id,
                               "audio", f"{path} has {info.channels} channels; probekit's audio "
                               "is mono (extraction averages the channels)"))
        if src.offset + (src.duration or 0.0) > file_seconds + TIME_TOLERANCE:
            return [p("audio_slice", f"slice {src.offset:.3f}+{src.duration or 0:.3f} s runs "
                                     f"past the end of {path} ({file_seconds:.3f} s)")], None
    try:
        samples, sr = u.load_audio(root)
    except CorpusError as exc:
        return [p("audio_corrupt", str(exc))], None
    if samples.size == 0:
        return [p("audio_empty", "the audio has no samples")], None
    if not np.isfinite(samples).all():
        n = int((~np.isfinite(samples)).sum())
        return [p("audio_nan", f"{n} NaN or infinite sample(s)")], None
    return (fmt if src.path is not None else []), samples.size / sr


def _alignment_problems(u: Utterance, seconds: float | None) -> list[Problem]:
    out = []
    for field in ("words", "phones"):
        segs: tuple[Segment, ...] = getattr(u, field)
        for i, s in enumerate(segs):
            where = f"{field}[{i}]"
            if s.start < -TIME_TOLERANCE:
                out.append(Problem("alignment_past_end", "error", u.id, where,
                                   f"{s.symbol!r} starts before the audio ({s.start:.3f} s)"))
            elif seconds is not None and s.end > seconds + TIME_TOLERANCE:
                out.append(Problem("alignment_past_end", "error", u.id, where,
                                   f"{s.symbol!r} ends at {s.end:.3f} s, after the audio's end "
                                   f"({seconds:.3f} s; tolerance {TIME_TOLERANCE} s)"))
        order = sorted(range(len(segs)), key=lambda i: (segs[i].start, segs[i].end))
        for a, b in zip(order, order[1:]):
            if segs[b].start < segs[a].end - TIME_TOLERANCE:
                out.append(Problem("alignment_overlap", "error", u.id, f"{field}[{b}]",
                                   f"{segs[b].symbol!r} ({segs[b].start:.3f}-{segs[b].end:.3f} s)"
                                   f" overlaps {segs[a].symbol!r} "
                                   f"({segs[a].start:.3f}-{segs[a].end:.3f} s)"))
    return out


def _utterance_problems(u: Utterance, root: Path | None, attributes: Sequence[str],
                        check_audio: bool) -> list[Problem]:
    out: list[Problem] = []
    seconds = None
    if check_audio:
        audio, seconds = _audio_problems(u, root)
        out += audio
        if seconds is not None and u.duration is not None and \
                abs(u.duration - seconds) > TIME_TOLERANCE:
            out.append(Problem("duration_mismatch", "warning", u.id, "duration",
                               f"duration says {u.duration:.3f} s, the audio has {seconds:.3f} s"))
    if seconds is None and u.duration is not None and not out:
        seconds = u.duration
    if not u.text.strip():
        out.append(Problem("text_empty", "error", u.id, "text", "the transcript is empty" + (
            "" if u.sentence_id else " and there is no sentence id: its sentence may repeat "
            "across the split unnoticed")))
    out += _alignment_problems(u, seconds)
    for attr in attributes:
        if not str(u.groups.get(attr, "")).strip():
            out.append(Problem("group_missing", "error", u.id, f"groups.{attr}",
                               f"no {attr!r} label"))
    return out


def _speaker_problems(utts: list[Utterance], attributes: Sequence[str]) -> list[Problem]:
    out = []
    for attr in attributes:
        by_speaker: dict[str, list[Utterance]] = defaultdict(list)
        for u in utts:
            by_speaker[u.speaker].append(u)
        for spk, us in by_speaker.items():
            counts = Counter(u.groups[attr] for u in us)
            if len(counts) < 2:
                continue
            (top, n1), (_, n2) = counts.most_common(2)
            majority = top if n1 > n2 else None  # a tie: nobody knows which label is right
            for u in us:
                if u.groups[attr] != majority:
                    out.append(Problem(
                        "speaker_label_conflict", "error", u.id, f"groups.{attr}",
                        f"speaker {spk} has {attr!r} labels {dict(counts)}; this utterance "
                        f"says {u.groups[attr]!r}"))
    return out


def _group_problems(utts: list[Utterance], attributes: Sequence[str],
                    min_speakers: int) -> list[Problem]:
    out = []
    for attr in attributes:
        speakers: dict[str, set[str]] = defaultdict(set)
        for u in utts:
            speakers[u.groups[attr]].add(u.speaker)
        for label, spks in sorted(speakers.items()):
            if len(spks) >= min_speakers:
                continue
            msg = (f"group {attr}={label!r} has {len(spks)} speaker(s) ({', '.join(sorted(spks))})"
                   f"; at least {min_speakers} are needed for a speaker-disjoint split")
            out += [Problem("group_too_small", "error", u.id, f"groups.{attr}", msg)
                    for u in utts if u.groups[attr] == label]
    return out


def validate_corpus(corpus: Corpus, *, min_speakers_per_group: int = 2,
                    attributes: Sequence[str] | None = None,
                    check_audio: bool = True) -> ValidationReport:
    """Check a corpus and report every problem with the utterance and field it concerns.

    Parameters
    ----------
    corpus : Corpus
    min_speakers_per_group : int
        Smallest number of speakers a group may have (2: one each side of a split).
    attributes : sequence of str or None
        Group attributes to check; ``None``: every attribute any utterance carries.
    check_audio : bool
        Decode every file (slow for large corpora); ``False`` checks only the records.

    Returns
    -------
    ValidationReport
        Speaker- and group-level rules are applied to the utterances that pass the
        per-utterance rules, repeatedly, until nothing changes: so the clean corpus passes
        validation itself (dropping one group's speakers can shrink another attribute's group).
    """
    attributes = list(corpus.attributes if attributes is None else attributes)
    problems: list[Problem] = []
    for u in corpus:
        problems += _utterance_problems(u, corpus.root, attributes, check_audio)
    bad = {p.utterance for p in problems if p.severity == "error"}
    while True:
        alive = [u for u in corpus if u.id not in bad]
        new = _speaker_problems(alive, attributes)
        if not new:  # group sizes are meaningful only once labels are consistent
            new = _group_problems(alive, attributes, min_speakers_per_group)
        if not new:
            break
        problems += new
        bad |= {p.utterance for p in new}
    problems += corpus_checks(corpus, lambda rule, uid, field, msg:
                              Problem(rule, RULES[rule], uid, field, msg), check_audio=check_audio)
    return ValidationReport(corpus, problems)
