"""The embedded default corpus: synthetic accented English read by espeak-ng speakers.

Accent groups are espeak-ng English varieties plus non-English voices reading English with
their own letter-to-sound rules (a crude first-language transfer). Speakers are voice
variants (``+m1`` ... ``+f5``) with their own pitch and rate. Every speaker reads a block of
Harvard sentences; blocks rotate across speakers so each sentence is read by several speakers
in several groups (sentence-disjoint splits are possible).

Results on this corpus demonstrate a method; they are never findings about people.

Output folder::

    manifest.jsonl          one Utterance per line (Corpus.save), audio paths relative
    wav/<accent>/<speaker>/<utterance>.wav   16 kHz mono PCM_16
    synthetic.json          config, its hash and build statistics; written last (the stamp)

Building is deterministic: the same config gives byte-identical WAV files and manifest.

The plan (accent groups, config, presets, speaker and sentence plans) lives in
:mod:`probekit.corpus.synthetic_plan` and is re-exported here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from probekit.corpus.model import MANIFEST_NAME, AudioSource, Corpus, Utterance
from probekit.corpus.synthetic_plan import (
    ACCENTS,
    FEMALE_VARIANTS,
    GENERATOR_VERSION,
    MALE_VARIANTS,
    PRESETS,
    Accent,
    SpeakerPlan,
    SyntheticConfig,
    harvard_sentences,
    resolve_config,
    sentence_plan,
    speaker_plan,
)
from probekit.cache import cache_root
from probekit.errors import CorpusError

__all__ = ["ACCENTS", "PRESETS", "SyntheticConfig", "build_synthetic_corpus",
           "harvard_sentences", "speaker_plan", "sentence_plan", "SYNTHETIC_STAMP_NAME",
           "corpora_cache", "resolve_config", "finished_fingerprint", "default_corpus_size"]

log = logging.getLogger(__name__)

#: Written last into a finished corpus folder; its presence means the folder is complete.
SYNTHETIC_STAMP_NAME = "synthetic.json"


def default_corpus_size() -> str:
    """The default synthetic preset's size in words, from the preset itself, e.g.
    ``"10 accents x 10 speakers x 5 sentences (500 utterances)"``."""
    c = resolve_config("default")
    g = c.groups if isinstance(c.groups, int) else len(c.groups)
    n = g * c.speakers_per_group * c.sentences_per_speaker
    return (f"{g} accents x {c.speakers_per_group} speakers x {c.sentences_per_speaker} "
            f"sentences ({n} utterances)")


# -- building ------------------------------------------------------------------------------
def corpora_cache() -> Path:
    """Where built corpora are cached: ``corpora/`` under :func:`probekit.cache.cache_root`."""
    return cache_root() / "corpora"


def _read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((folder / SYNTHETIC_STAMP_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def finished_fingerprint(folder: str | os.PathLike) -> str | None:
    """The config fingerprint of a finished synthetic corpus in ``folder`` (else ``None``)."""
    stamp = _read_stamp(Path(folder))
    if stamp and (Path(folder) / MANIFEST_NAME).exists():
        return stamp.get("fingerprint")
    return None


def _to_pcm16(samples: np.ndarray) -> np.ndarray:
    # Our own rounding, not libsndfile's float conversion: the bytes must not depend on it.
    return np.clip(np.round(samples.astype(np.float64) * 32767.0), -32768, 32767).astype(np.int16)


def _synthesise_into(config: SyntheticConfig, folder: Path, progress: bool) -> dict:
    """Write wavs and the manifest into ``folder``; returns build statistics."""
    import soundfile as sf
    from tqdm.auto import tqdm

    from probekit.corpus import phones as phone_inventory
    from probekit.corpus.espeak import synthesize

    blocks = sentence_plan(config)
    speakers = speaker_plan(config)
    utts: list[Utterance] = []
    dropped: Counter[str] = Counter()
    unmapped_before = Counter(phone_inventory.UNMAPPED)
    bar = tqdm(total=config.n_utterances, desc=f"synthesising {config.name} corpus",
               unit="utt", disable=not progress)
    for spk in speakers:
        accent = ACCENTS[spk.accent]
        for sid, text in blocks[spk.block]:
            uid = f"{spk.id}_{sid}"
            s = synthesize(text, accent.voice, variant=spk.variant, rate=spk.rate,
                           pitch=spk.pitch, sample_rate=config.sample_rate, seed=spk.seed)
            rel = Path("wav") / spk.accent / spk.id / f"{uid}.wav"
            (folder / rel.parent).mkdir(parents=True, exist_ok=True)
            sf.write(str(folder / rel), _to_pcm16(s.samples), config.sample_rate,
                     subtype="PCM_16", format="WAV")
            dropped.update(p.symbol for p in s.dropped_phones)
            utts.append(Utterance(
                id=uid, speaker=spk.id, text=text, sentence_id=sid,
                groups={"accent": spk.accent, "gender": spk.gender, "l1": accent.l1},
                audio=AudioSource(path=rel.as_posix(), sample_rate=config.sample_rate),
                words=s.words, phones=s.phones,
                duration=len(s.samples) / config.sample_rate))
            bar.update(1)
    bar.close()
    Corpus(utts, root=folder, name=config.name).save(folder)
    unmapped = phone_inventory.UNMAPPED - unmapped_before
    if unmapped:
        log.warning("phones outside the inventory (kept as they are): %s", dict(unmapped))
    return {
        "utterances": len(utts),
        "speakers": [asdict(s) for s in speakers],
        "hours": round(sum(u.duration or 0.0 for u in utts) / 3600.0, 6),
        "dropped_zero_length_phones": dict(sorted(dropped.items())),
        "unmapped_phones": dict(sorted(unmapped.items())),
    }


def build_synthetic_corpus(config: SyntheticConfig | str = "default",
                           out_dir: str | os.PathLike | None = None, *,
                           progress: bool = True) -> Corpus:
    """Build (or reuse) the synthetic accented corpus.

    Parameters
    ----------
    config : SyntheticConfig or str
        A config or a preset name from :data:`PRESETS` (``"small"``, ``"default"``).
    out_dir : path or None
        Where the corpus goes. ``None``: the cache, ``corpora_cache() / f"{name}-{fingerprint}"``
        (``PROBEKIT_CACHE_DIR`` overrides the user cache folder).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Corpus
        Loaded from the folder's manifest; group attributes ``accent``, ``gender``, ``l1``.

    Raises
    ------
    CorpusError
        ``out_dir`` is not empty and is not a finished corpus of the same config.

    Notes
    -----
    A finished folder of the same config is reused as it is. The corpus is built in a hidden
    sibling folder and renamed into place after its stamp (``synthetic.json``) is written, so
    a crash never leaves a half-built corpus where a finished one is expected; leftovers of a
    crashed build are removed by the next build.
    """
    config = resolve_config(config)
    fp = config.fingerprint()
    in_cache = out_dir is None
    target = (corpora_cache() / f"{config.name}-{fp}") if in_cache else Path(out_dir)
    target = target.expanduser().absolute()
    if target.exists():
        found = finished_fingerprint(target)
        if found == fp:
            return Corpus.load(target, name=config.name)
        if any(target.iterdir()):
            if not in_cache:
                what = (f"a synthetic corpus of another config ({found})" if found
                        else "not a finished synthetic corpus")
                raise CorpusError(f"{target} is not empty and is {what}; choose an empty or "
                                  "new folder")
            shutil.rmtree(target)  # our own cache entry, unfinished or stale: rebuild it
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(stale, ignore_errors=True)
    work = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        stats = _synthesise_into(config, work, progress)
        stamp = {"fingerprint": fp, "config": config.to_dict(),
                 "generator_version": GENERATOR_VERSION, **stats}
        from probekit.atomic import write_json
        write_json(work / SYNTHETIC_STAMP_NAME, stamp, sort_keys=True, ensure_ascii=False)
        from probekit.outdir import write_stamp

        # probekit's ownership stamp, listing exactly what the build wrote (probekit.outdir)
        write_stamp(work, "corpus", {"command": "corpus synth", "fingerprint": fp,
                                     "contents": sorted(p.name for p in work.iterdir()),
                                     "complete": True}, timestamp=False)
        try:
            if target.exists():
                target.rmdir()  # empty (checked above); os.replace needs it gone or empty
            os.replace(work, target)
        except OSError:
            # Another process finished the same corpus first: use theirs.
            if finished_fingerprint(target) != fp:
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("synthetic corpus %s written to %s", config.name, target)
    return Corpus.load(target, name=config.name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
