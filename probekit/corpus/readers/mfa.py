"""Montreal Forced Aligner output: one wav + one TextGrid per utterance.

MFA reads a corpus of ``<speaker>/<utt>.wav`` (+ ``.lab`` or ``.txt`` transcripts) and writes
``<speaker>/<utt>.TextGrid`` with a ``words`` and a ``phones`` tier. Both layouts are read:

- the TextGrids beside the audio (the output copied into the corpus folder), or
- an output folder of TextGrids plus ``audio_dir=`` (the input corpus), matched by relative
  path ``<speaker>/<utt>``.

Speaker: the folder holding the file (MFA's default speaker mode). A file directly in the root
(a flat folder) takes its speaker from its name: by default the name without its last ``_``- or
``-``-separated field (``spk01_utt1`` -> ``spk01``, ``alba_spk01_utt1`` -> ``alba_spk01``,
``p225_001`` -> ``p225``; a name without a separator is its own speaker).
``speaker_chars=N`` takes the first N characters of every name instead (MFA's ``-s N``), and
``speaker_pattern=REGEX`` the regex's ``speaker`` group (or its first group, or the whole
match) from the start of every name; a name it does not match is an error. The rule in use is
``Corpus.speaker_rule`` (printed by ``corpus summary``; ``corpus validate`` warns when it looks
wrong). Utterance id: ``<speaker>-<utt>``. Text: the ``.lab``/``.txt`` beside the audio, else the words tier.
Silence and spoken-noise labels (``""``, ``sil``, ``sp``, ``spn``...) are left out of the
tiers; phones are kept as written (MFA's English ARPAbet models keep stress digits: fold them
with ``fold_corpus(corpus, "arpabet-nostress")``, :mod:`probekit.corpus.phonesets`).

Groups: a ``speakers.csv`` or ``speakers.tsv`` in the root (or ``speakers=`` a path), with a
``speaker`` column and one column per attribute (``accent``, ``gender``...).
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from probekit.corpus.model import AudioSource, Corpus, Utterance
from probekit.corpus.readers import register_reader
from probekit.corpus.readers._common import (header_seconds, normalise_gender, speech_segments,
                                             with_sentence_ids)
from probekit.corpus.readers.textgrid import read_textgrid
from probekit.errors import CorpusError
from probekit.schema import read_utf8

__all__ = ["read_mfa"]

_AUDIO = (".wav", ".flac")


def _textgrids(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".textgrid")


def _audio_for(tg: Path, rel: Path, audio_dir: Path | None) -> Path | None:
    bases = [tg.parent] if audio_dir is None else [audio_dir / rel.parent]
    for base in bases:
        for ext in _AUDIO:
            p = base / (tg.stem + ext)
            if p.is_file():
                return p
    return None


def _detect(path: Path) -> bool:
    if not path.is_dir():
        return False
    n = 0
    for tg in path.rglob("*.TextGrid"):
        if not any((tg.parent / (tg.stem + ext)).is_file() for ext in _AUDIO):
            return False  # e.g. L2-ARCTIC keeps TextGrids in their own folder
        n += 1
        if n >= 3:
            break
    return n > 0


def _speaker_table(path: Path | None) -> dict[str, dict[str, str]]:
    if path is None or not path.is_file():
        return {}
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    with io.StringIO(read_utf8(path, CorpusError), newline="") as f:
        rows = list(csv.DictReader(f, delimiter=delim))
    if rows and "speaker" not in rows[0]:
        raise CorpusError(f"{path}: needs a 'speaker' column (has {list(rows[0])})")
    out = {}
    for r in rows:
        spk = str(r.pop("speaker")).strip()
        out[spk] = {k: (normalise_gender(v) if k == "gender" else str(v).strip())
                    for k, v in r.items() if v is not None and str(v).strip()}
    return out


#: The default rule for files directly in the root: the name without its last field.
DEFAULT_FLAT_RULE = "file name without its last '_'/'-' field"


def _speaker_of(stem: str, folder: str, chars: int | None, pattern: re.Pattern | None,
                where: Path) -> str:
    if pattern is not None:
        m = pattern.match(stem)
        if m is None or not (m.groupdict().get("speaker") or (m.group(1) if m.re.groups else m.group(0))):
            raise CorpusError(f"{where}: speaker_pattern {pattern.pattern!r} does not match "
                              f"the file name {stem!r}")
        return m.groupdict().get("speaker") or (m.group(1) if m.re.groups else m.group(0))
    if chars:
        return stem[: int(chars)]
    if folder:
        return folder
    return re.sub(r"[_-][^_-]*$", "", stem) or stem


def _rule(chars: int | None, pattern: re.Pattern | None, flat: bool, nested: bool) -> str:
    if pattern is not None:
        return f"file name matched by speaker_pattern {pattern.pattern!r}"
    if chars:
        return f"first {int(chars)} characters of the file name (speaker_chars)"
    parts = (["the folder holding the file"] if nested else []) + \
        ([f"{DEFAULT_FLAT_RULE} (files directly in the root)"] if flat else [])
    return "; ".join(parts)


def _tier(tiers, kind: str):
    for name, tier in tiers.items():
        if name.strip().lower() in (kind, kind + "s"):
            return tier
    return None


@register_reader("mfa", _detect)
def read_mfa(path: str | os.PathLike, *, audio_dir: str | os.PathLike | None = None,
             speakers: str | os.PathLike | None = None, speaker_chars: int | None = None,
             speaker_pattern: str | None = None, name: str | None = None) -> Corpus:
    """Montreal Forced Aligner output (wav + TextGrid with words/phones tiers per utterance).

    Parameters
    ----------
    path : path
        Folder of TextGrids (with the audio beside them unless ``audio_dir`` is given).
    audio_dir : path, optional
        The aligned corpus (MFA's input), when the TextGrids are in a separate output folder.
    speakers : path, optional
        Speaker table (CSV/TSV with a ``speaker`` column); default ``speakers.csv`` or
        ``speakers.tsv`` in ``path`` or ``audio_dir``.
    speaker_chars : int, optional
        Speaker = first N characters of the file name; default: the folder, and for files
        directly in ``path`` the name without its last ``_``/``-`` field.
    speaker_pattern : str, optional
        Speaker = the ``speaker`` group (else the first group, else the match) of this regex
        matched at the start of the file name, e.g. ``"(?P<speaker>[a-z]+_spk\\d+)"``.
    """
    root = Path(path)
    if not root.is_dir():
        raise CorpusError(f"MFA output folder not found: {root}")
    adir = None if audio_dir is None else Path(audio_dir)
    audio_root = adir or root
    table_path = Path(speakers) if speakers is not None else next(
        (d / f for d in (root, audio_root) for f in ("speakers.csv", "speakers.tsv")
         if (d / f).is_file()), None)
    table = _speaker_table(table_path)
    if speaker_pattern is not None and speaker_chars:
        raise CorpusError("pass speaker_chars or speaker_pattern, not both")
    try:
        pattern = None if speaker_pattern is None else re.compile(str(speaker_pattern))
    except re.error as exc:
        raise CorpusError(f"speaker_pattern {speaker_pattern!r} is not a regex: {exc}") from None
    flat = nested = False
    utts = []
    for tg in _textgrids(root):
        rel = tg.relative_to(root)
        wav = _audio_for(tg, rel, adir)
        if wav is None:
            raise CorpusError(f"{tg}: no audio file {tg.stem}.wav/.flac "
                              f"{'beside it' if adir is None else f'under {adir / rel.parent}'}")
        spk = _speaker_of(tg.stem, rel.parent.name, speaker_chars, pattern, tg)
        flat, nested = flat or not rel.parent.name, nested or bool(rel.parent.name)
        tiers = read_textgrid(tg)
        words_t, phones_t = _tier(tiers, "word"), _tier(tiers, "phone")
        if phones_t is None:
            raise CorpusError(f"{tg}: no 'phones' tier (tiers: {sorted(tiers)})")
        words = () if words_t is None else speech_segments((i.text, i.start, i.end)
                                                           for i in words_t.intervals)
        phones = speech_segments((i.text, i.start, i.end) for i in phones_t.intervals)
        text = ""
        for ext in (".lab", ".txt"):
            t = wav.with_suffix(ext)
            if t.is_file():
                text = " ".join(t.read_text(encoding="utf-8").split())
                break
        if not text:
            text = " ".join(w.symbol for w in words)
        utts.append(Utterance(
            id=f"{spk}-{tg.stem}" if not tg.stem.startswith(spk) else tg.stem,
            audio=AudioSource(path=os.path.relpath(wav, audio_root) if adir is None
                              else str(wav.absolute())),
            speaker=spk, groups=table.get(spk, {}), text=text, words=words, phones=phones,
            duration=header_seconds(wav)))
    if not utts:
        raise CorpusError(f"no TextGrid files under {root}")
    return Corpus(with_sentence_ids(utts), root=root, name=name or root.name,
                  speaker_rule=_rule(speaker_chars, pattern, flat, nested))
