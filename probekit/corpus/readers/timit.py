"""TIMIT (LDC93S1): 630 speakers of 8 US dialect regions, with hand-corrected phone and word
times.

Native layout (upper or lower case, as on the LDC disc or its common copies)::

    <root>/[TIMIT/]{TRAIN,TEST}/DR<n>/<sex><initials><digit>/<utt>.{WAV,PHN,WRD,TXT}

``.PHN``/``.WRD`` lines are ``<start sample> <end sample> <label>`` at 16 kHz, so times are
samples / 16000. ``.TXT`` is ``<start> <end> <text>``. Groups: ``dialect`` (``DR1``...``DR8``,
named in :data:`DIALECT_REGIONS`) and ``gender`` (first letter of the speaker folder, ``M``/``F``).
The sentence id is the utterance name (``SA1``, ``SX3``...): SA sentences are read by every
speaker, SX ones by about seven. The 61 TIMIT phone labels are kept as written except the
non-speech ``h#``, ``pau`` and ``epi``, which are left out unless ``keep_silence=True``.
When a copy ships both a NIST ``X.WAV`` and a RIFF ``X.WAV.wav``, the RIFF one is used.
"""

from __future__ import annotations

import os
from pathlib import Path

from probekit.corpus.model import AudioSource, Corpus, Segment, Utterance
from probekit.corpus.readers import register_reader
from probekit.corpus.readers._common import files_with_suffix, find_case_insensitive
from probekit.errors import CorpusError

__all__ = ["read_timit", "DIALECT_REGIONS", "TIMIT_SAMPLE_RATE"]

#: TIMIT's time stamps are sample indices at this rate (Hz).
TIMIT_SAMPLE_RATE = 16000

#: Dialect regions as named in TIMIT's documentation.
DIALECT_REGIONS = {
    "DR1": "New England", "DR2": "Northern", "DR3": "North Midland", "DR4": "South Midland",
    "DR5": "Southern", "DR6": "New York City", "DR7": "Western", "DR8": "Army Brat",
}
_NON_SPEECH = {"h#", "pau", "epi"}


def _is_utt_dir(p: Path) -> bool:
    return (p.parent.name.upper() in DIALECT_REGIONS and p.name[:1].upper() in "MF"
            and len(p.name) == 5)


def _detect(path: Path) -> bool:
    if not path.is_dir():
        return False
    # Cheap: look two or three levels down for DR<n>/<speaker> folders.
    for pattern in ("*/*/*", "*/*/*/*"):
        for p in path.glob(pattern):
            if p.is_dir() and _is_utt_dir(p):
                return True
    return False


def _read_times(path: Path, what: str) -> list[tuple[str, float, float]]:
    out = []
    for lineno, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=2)
        try:
            a, b, label = int(parts[0]), int(parts[1]), parts[2].strip()
        except (ValueError, IndexError):
            raise CorpusError(f"{path}:{lineno}: expected '<start> <end> <{what}>', "
                              f"got {line!r}") from None
        out.append((label, a / TIMIT_SAMPLE_RATE, b / TIMIT_SAMPLE_RATE))
    return out


def _segments(path: Path | None, what: str, keep_silence: bool) -> tuple[Segment, ...]:
    if path is None:
        return ()
    items = _read_times(path, what)
    try:
        return tuple(Segment(lab, a, b) for lab, a, b in items
                     if keep_silence or lab.lower() not in _NON_SPEECH)
    except CorpusError as exc:
        raise CorpusError(f"{path}: {exc}") from None


@register_reader("timit", _detect)
def read_timit(path: str | os.PathLike, *, keep_silence: bool = False,
               name: str = "timit") -> Corpus:
    """TIMIT in its native layout (DR*/<speaker>/<utt>.WAV/.PHN/.WRD/.TXT)."""
    root = Path(path)
    if not root.is_dir():
        raise CorpusError(f"TIMIT root not found: {root}")
    utts = []
    seen: set[tuple[Path, str]] = set()
    for phn in files_with_suffix(root, ".phn"):
        folder = phn.parent
        stem = phn.stem
        # Some copies hold upper- and lower-case duplicates of every file.
        if not _is_utt_dir(folder) or (folder, stem.upper()) in seen:
            continue
        seen.add((folder, stem.upper()))
        wav = (find_case_insensitive(folder, f"{stem}.wav.wav")
               or find_case_insensitive(folder, f"{stem}.wav")
               or folder / f"{stem}.WAV")  # missing: validation reports it
        txt = find_case_insensitive(folder, f"{stem}.txt")
        text = ""
        if txt is not None:
            parts = txt.read_text(encoding="latin-1").split(maxsplit=2)
            text = " ".join(parts[2].split()) if len(parts) == 3 else ""
        speaker = folder.name.upper()
        utts.append(Utterance(
            id=f"{speaker}-{stem.upper()}",
            audio=AudioSource(path=wav.relative_to(root).as_posix()),
            speaker=speaker,
            groups={"dialect": folder.parent.name.upper(),
                    "gender": "male" if speaker[0] == "M" else "female"},
            text=text,
            words=_segments(find_case_insensitive(folder, f"{stem}.wrd"), "word", True),
            phones=_segments(phn, "phone", keep_silence),
            sentence_id=stem.upper(),
        ))
    if not utts:
        raise CorpusError(f"no TIMIT utterances (DR*/<speaker>/*.PHN) under {root}")
    return Corpus(utts, root=root, name=name)
