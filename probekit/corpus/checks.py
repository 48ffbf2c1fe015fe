"""Corpus-level warnings of ``corpus validate`` about what a reader could not know (issue 18):
a speaker rule that looks wrong, the same audio twice. (An utterance with no transcript and no
sentence id is already a ``text_empty`` error, whose message says that its sentence may repeat
across the split.)

=====================  ========  ==========================================================
rule                   severity  meaning
=====================  ========  ==========================================================
speaker_rule           warning   speakers inferred from file names look merged (the names
                                 left after the speaker part still vary in a field that
                                 repeats, e.g. ``voiceA_spk01_utt1`` read as ``voiceA``) or
                                 split (every speaker has one file)
audio_duplicate        warning   byte-identical audio (same bytes and slice) under two
                                 speakers or two utterance ids
=====================  ========  ==========================================================

These are our own heuristics (``docs/concepts.md``): they warn, they never drop an utterance.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from pathlib import Path, PurePath

from probekit.corpus.model import Corpus

__all__ = ["CHECK_RULES", "corpus_checks"]

CHECK_RULES = {"speaker_rule": "warning", "audio_duplicate": "warning"}

_SEP = re.compile(r"[_-]")


def _stem(u) -> str:
    return PurePath(u.audio.path).stem if u.audio.path else u.id


def _speaker_rule_problems(corpus: Corpus, problem) -> list:
    rule = getattr(corpus, "speaker_rule", None)
    if not rule or "file name" not in rule:
        return []
    by_spk: dict[str, list] = defaultdict(list)
    for u in corpus:
        by_spk[u.speaker].append(u)
    out = []
    if len(by_spk) > 1 and all(len(us) == 1 for us in by_spk.values()):
        u = corpus[0]
        out.append(problem("speaker_rule", u.id, "speaker",
                           f"the rule ({rule}) gives every one of {len(corpus)} files its own "
                           "speaker; pass speaker_pattern= if names carry a speaker field"))
    for spk, us in by_spk.items():
        rest = [_stem(u)[len(spk):].lstrip("_-") if _stem(u).startswith(spk) else None for u in us]
        fields = [_SEP.split(r) for r in rest if r]
        heads = Counter(f[0] for f in fields if len(f) > 1)  # not the name's last field
        repeated = [h for h, n in heads.items() if n > 1]
        if len(repeated) > 1:
            out.append(problem(
                "speaker_rule", us[0].id, "speaker",
                f"speaker {spk!r} ({rule}) holds {len(us)} files whose names go on with "
                f"{len(repeated)} repeated values ({', '.join(sorted(repeated)[:4])}...): "
                "several speakers may be merged; pass speaker_pattern= to name them"))
    return out


def _duplicate_problems(corpus: Corpus, problem) -> list:
    seen: dict[tuple, object] = {}
    digests: dict[Path, str] = {}
    out = []
    for u in corpus:
        if u.audio.path is None:
            continue
        path = u.audio.resolve(corpus.root)
        if path not in digests:
            try:
                digests[path] = hashlib.sha1(path.read_bytes()).hexdigest()
            except OSError:
                continue  # audio_missing reports it
        key = (digests[path], round(u.audio.offset, 3), u.audio.duration)
        first = seen.setdefault(key, u)
        if first is u:
            continue
        what = (f"speakers {first.speaker!r} and {u.speaker!r}" if first.speaker != u.speaker
                else f"utterances {first.id!r} and {u.id!r} of speaker {u.speaker!r}")
        out.append(problem("audio_duplicate", u.id, "audio",
                           f"byte-identical audio ({path.name}) under {what}"))
    return out


def corpus_checks(corpus: Corpus, problem, *, check_audio: bool = True) -> list:
    """The warnings above; ``problem(rule, utterance, field, message)`` builds one finding."""
    out = _speaker_rule_problems(corpus, problem)
    if check_audio:
        out += _duplicate_problems(corpus, problem)
    return out
