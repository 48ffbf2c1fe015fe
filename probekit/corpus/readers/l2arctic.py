"""L2-ARCTIC (Zhao et al., Interspeech 2018): non-native English read by 24 speakers.

Native layout, one folder per speaker::

    <root>/<SPEAKER>/wav/arctic_a0001.wav
    <root>/<SPEAKER>/transcript/arctic_a0001.txt
    <root>/<SPEAKER>/textgrid/arctic_a0001.TextGrid      forced alignment: "words", "phones"
    <root>/<SPEAKER>/annotation/arctic_a0001.TextGrid    manual (~150 per speaker)
    <root>/suitcase_corpus/{wav,transcript,annotation}/<speaker>.*   spontaneous (optional)

Speaker gender and first language come from the table shipped in
``probekit/data/l2arctic_speakers.tsv`` (groups ``l1`` and ``gender``). Ids follow lhotse's
recipe: speaker ``aba``, utterance ``aba-arctic_a0001``, so manifests of both agree.

Annotated phone labels ``"CPL,PPL,s"`` (substitution), ``"CPL,sil,d"`` (deletion) and
``"sil,PPL,a"`` (addition) are split: by default (``phone_labels="canonical"``) the phone tier
keeps the canonical phone ``CPL`` (an addition has none and adds no phone);
``phone_labels="perceived"`` keeps what was said, ``PPL`` (a deletion then adds no phone).
Either way each error becomes a
:class:`~probekit.corpus.model.Mispronunciation` in ``Utterance.mispronunciations``.
"""

from __future__ import annotations

import csv
import io
import os
from importlib import resources
from pathlib import Path

from probekit.corpus.model import AudioSource, Corpus, Mispronunciation, Segment, Utterance
from probekit.corpus.readers import register_reader
from probekit.corpus.readers._common import SILENCE_LABELS, speech_segments, with_sentence_ids
from probekit.corpus.readers.textgrid import Tier, read_textgrid
from probekit.errors import CorpusError
from probekit.schema import read_utf8

__all__ = ["read_l2arctic", "speaker_table", "parse_annotated_phones", "PHONE_LABELS"]

_ERRORS = {"s": "substitution", "d": "deletion", "a": "addition"}


def speaker_table() -> dict[str, dict[str, str]]:
    """The 24 speakers: ``{"ABA": {"gender": "male", "l1": "Arabic"}, ...}``."""
    text = resources.files("probekit").joinpath("data/l2arctic_speakers.tsv").read_text("utf-8")
    rows = csv.DictReader(io.StringIO("".join(
        line for line in text.splitlines(keepends=True) if not line.startswith("#"))),
        delimiter="\t")
    return {r["speaker"]: {"gender": r["gender"], "l1": r["l1"]} for r in rows}


def _detect(path: Path) -> bool:
    if not path.is_dir():
        return False
    known = set(speaker_table())
    return any(p.name.upper() in known and (p / "wav").is_dir() for p in path.iterdir())


def _tier(tiers: dict[str, Tier], kind: str, path: Path) -> Tier | None:
    for name, tier in tiers.items():
        if name.strip().lower() in (kind, kind + "s"):
            return tier
    return None


#: Phone-label choices of :func:`read_l2arctic`.
PHONE_LABELS = ("canonical", "perceived")


def parse_annotated_phones(tier: Tier, where: str, labels: str = "canonical"
                           ) -> tuple[tuple[Segment, ...], tuple[Mispronunciation, ...]]:
    """Phone segments and mispronunciations of an L2-ARCTIC phone tier.

    ``labels="canonical"`` labels each phone by what was expected (an addition adds no
    phone); ``"perceived"`` by what the annotator heard (a deletion leaves no phone, an
    addition adds one). ``where`` names the file in error messages.
    """
    if labels not in PHONE_LABELS:
        raise CorpusError(f"phone_labels must be one of {PHONE_LABELS}, got {labels!r}")
    phones: list[Segment] = []
    errors: list[Mispronunciation] = []
    for iv in tier.intervals:
        label = iv.text.strip()
        if "," not in label:
            if label.lower() not in SILENCE_LABELS:
                phones.append(Segment(label, iv.start, iv.end))
            continue
        parts = [x.strip() for x in label.split(",")]
        if len(parts) != 3 or parts[2].lower() not in _ERRORS:
            raise CorpusError(f"{where}: phone label {label!r} at {iv.start:.3f} s is not "
                              "'canonical,perceived,s|d|a'")
        canonical, perceived, kind = parts[0], parts[1], _ERRORS[parts[2].lower()]
        canonical_phone = None if canonical.lower() in SILENCE_LABELS else canonical
        perceived_phone = None if perceived.lower() in SILENCE_LABELS else perceived
        if kind == "addition":
            canonical_phone = None
        if kind == "deletion":
            perceived_phone = None
        label_phone = canonical_phone if labels == "canonical" else perceived_phone
        if label_phone is not None:
            phones.append(Segment(label_phone, iv.start, iv.end))
        errors.append(Mispronunciation(iv.start, iv.end, canonical_phone, perceived_phone, kind))
    return tuple(phones), tuple(errors)


def _alignments(folder: Path, stem: str, prefer_annotation: bool, labels: str = "canonical"):
    candidates = [folder / "annotation", folder / "textgrid"]
    if not prefer_annotation:
        candidates.reverse()
    for sub in candidates:
        tg = sub / f"{stem}.TextGrid"
        if tg.is_file():
            tiers = read_textgrid(tg)
            words = _tier(tiers, "word", tg)
            phones = _tier(tiers, "phone", tg)
            if phones is None:
                raise CorpusError(f"{tg}: no 'phones' tier (tiers: {sorted(tiers)})")
            w = () if words is None else speech_segments((i.text, i.start, i.end)
                                                         for i in words.intervals)
            p, m = parse_annotated_phones(phones, str(tg), labels)
            return w, p, m
    return (), (), ()


def _utterance(root: Path, folder: Path, wav: Path, speaker: str, uid: str, groups: dict,
               sentence_id: str | None, prefer_annotation: bool,
               labels: str = "canonical") -> Utterance:
    txt = folder / "transcript" / f"{wav.stem}.txt"
    text = read_utf8(txt, CorpusError).strip() if txt.is_file() else ""
    words, phones, errors = _alignments(folder, wav.stem, prefer_annotation, labels)
    return Utterance(id=uid, audio=AudioSource(path=wav.relative_to(root).as_posix()), speaker=speaker, groups=groups,
                     text=" ".join(text.split()), words=words, phones=phones,
                     sentence_id=sentence_id, mispronunciations=errors)


@register_reader("l2arctic", _detect)
def read_l2arctic(path: str | os.PathLike, *, prefer_annotation: bool = True,
                  suitcase: bool = False, phone_labels: str = "canonical",
                  name: str = "l2arctic") -> Corpus:
    """L2-ARCTIC in its native layout (speaker folders with wav/ transcript/ textgrid/ ...).

    Parameters
    ----------
    path : path
        The corpus root, holding one folder per speaker.
    prefer_annotation : bool
        Take words/phones from the manual ``annotation/`` TextGrid when there is one (it also
        carries the mispronunciations), else from the forced-aligned ``textgrid/``.
    suitcase : bool
        Also read the spontaneous ``suitcase_corpus`` (one long recording per speaker).
    phone_labels : {"canonical", "perceived"}
        Label annotated phones by what was expected (``"canonical"``, the default: a probe
        then measures how well the encoder recovers the intended phone) or by what the
        annotator heard (``"perceived"``). Unannotated utterances are the same either way;
        the mispronunciation records are kept in both.
    """
    if phone_labels not in PHONE_LABELS:
        raise CorpusError(f"phone_labels must be one of {PHONE_LABELS}, got {phone_labels!r}")
    root = Path(path)
    if not root.is_dir():
        raise CorpusError(f"L2-ARCTIC root not found: {root}")
    table = speaker_table()
    utts: list[Utterance] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / "wav").is_dir()):
        if folder.name == "suitcase_corpus":
            continue
        meta = table.get(folder.name.upper())
        if meta is None:
            raise CorpusError(f"{folder}: {folder.name!r} is not one of the 24 L2-ARCTIC "
                              f"speakers {sorted(table)}")
        spk = folder.name.lower()
        for wav in sorted((folder / "wav").glob("*.wav")):
            utts.append(_utterance(root, folder, wav, spk, f"{spk}-{wav.stem}", meta, wav.stem,
                                   prefer_annotation, phone_labels))
    suit = root / "suitcase_corpus"
    if suitcase and (suit / "wav").is_dir():
        for wav in sorted((suit / "wav").glob("*.wav")):
            meta = table.get(wav.stem.upper(), {})
            utts.append(_utterance(root, suit, wav, wav.stem.lower(),
                                   f"suitcase_corpus-{wav.stem.lower()}", meta, None,
                                   prefer_annotation, phone_labels))
    if not utts:
        raise CorpusError(f"no L2-ARCTIC speaker folders with wav/ under {root}")
    return Corpus(with_sentence_ids(utts), root=root, name=name)
