"""VCTK (Veaux, Yamagishi & MacDonald): about 110 speakers of British Isles and other English
accents reading newspaper sentences, the Rainbow Passage and the Speech Accent Archive
paragraph.

Native layouts::

    0.80: <root>/speaker-info.txt, txt/p225/p225_001.txt, wav48/p225/p225_001.wav
    0.92: <root>/speaker-info.txt, txt/p225/p225_001.txt,
          wav48_silence_trimmed/p225/p225_001_mic1.flac (and _mic2)

``speaker-info.txt`` columns ``ID AGE GENDER ACCENTS REGION [COMMENTS]`` (IDs with or without
the ``p``) give the groups ``accent`` and ``gender``. ``REGION`` is left out of the groups (most
regions have one speaker). An utterance whose text or audio is missing is still returned, with
empty text or the expected audio path, so that validation reports it rather than it vanishing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from probekit.corpus.model import AudioSource, Corpus, Utterance
from probekit.corpus.readers import register_reader
from probekit.corpus.readers._common import normalise_gender
from probekit.text import sentence_key
from probekit.errors import CorpusError

__all__ = ["read_vctk", "read_speaker_info"]

_AUDIO_DIRS = ("wav48_silence_trimmed", "wav48", "wav16", "wav")


def _detect(path: Path) -> bool:
    return path.is_dir() and (path / "speaker-info.txt").is_file() and (path / "txt").is_dir()


def read_speaker_info(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Parse ``speaker-info.txt`` into ``{"p225": {"gender": "female", "accent": "English",
    "age": "23", "region": "Southern England"}, ...}``."""
    path = Path(path)
    lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()
             if ln.strip()]
    if not lines or not {"ID", "GENDER", "ACCENTS"} <= set(lines[0].upper().split()):
        raise CorpusError(f"{path}: expected a header 'ID AGE GENDER ACCENTS REGION'")
    out = {}
    for lineno, line in enumerate(lines[1:], 2):
        parts = line.split()
        if len(parts) < 4:
            raise CorpusError(f"{path}:{lineno}: expected 'ID AGE GENDER ACCENTS [REGION]', "
                              f"got {line!r}")
        spk = parts[0] if parts[0].lower().startswith(("p", "s")) else f"p{parts[0]}"
        # 0.92 appends comments in parentheses, e.g. "(mic2 files unavailable)".
        region = re.sub(r"\(.*?\)", "", " ".join(parts[4:])).strip()
        out[spk] = {"age": parts[1], "gender": normalise_gender(parts[2]) or "",
                    "accent": parts[3], "region": region}
    return out


def _audio_dir(root: Path) -> Path:
    for name in _AUDIO_DIRS:
        if (root / name).is_dir():
            return root / name
    raise CorpusError(f"VCTK root {root} has none of the audio folders {_AUDIO_DIRS}")


@register_reader("vctk", _detect)
def read_vctk(path: str | os.PathLike, *, mic: str = "mic2", name: str = "vctk") -> Corpus:
    """VCTK in its native layout (speaker-info.txt, txt/, wav48/ or wav48_silence_trimmed/).

    Parameters
    ----------
    mic : str
        Which microphone of release 0.92 to use (``"mic1"`` or ``"mic2"``, lhotse's default);
        ignored for releases with one file per utterance.
    """
    root = Path(path)
    if not _detect(root):
        raise CorpusError(f"{root} is not a VCTK folder (needs speaker-info.txt and txt/)")
    info = read_speaker_info(root / "speaker-info.txt")
    audio_dir = _audio_dir(root)
    audio: dict[str, Path] = {}
    for p in sorted(audio_dir.rglob("*")):
        if p.suffix.lower() not in (".wav", ".flac") or not p.is_file():
            continue
        stem = p.stem
        if stem.endswith(("_mic1", "_mic2")):
            if not stem.endswith("_" + mic):
                continue
            stem = stem.rsplit("_", 1)[0]
        audio[stem] = p
    texts = {p.stem: p for p in sorted((root / "txt").rglob("*.txt"))}
    suffix = next(iter(audio.values())).suffix if audio else ".wav"
    utts = []
    for uid in sorted(set(audio) | set(texts)):
        speaker = uid.split("_")[0]
        wav = audio.get(uid)
        if wav is None:  # expected path, reported as missing by validation
            tail = f"_{mic}" if audio_dir.name == "wav48_silence_trimmed" else ""
            wav = audio_dir / speaker / f"{uid}{tail}{suffix}"
        txt = texts.get(uid)
        text = txt.read_text(encoding="utf-8", errors="replace") if txt else ""
        meta = info.get(speaker, {})
        utts.append(Utterance(
            id=uid,
            audio=AudioSource(path=wav.relative_to(root).as_posix()),
            speaker=speaker,
            groups={k: meta[k] for k in ("accent", "gender") if meta.get(k)},
            text=" ".join(text.split()),
            # Utterance numbers are per speaker (only the shared passages coincide), so the
            # prompt's normalised text identifies the sentence.
            sentence_id=sentence_key(text),
        ))
    if not utts:
        raise CorpusError(f"no VCTK utterances under {root}")
    return Corpus(utts, root=root, name=name)
