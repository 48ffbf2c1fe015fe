"""The ids a model saw, and the leakage guard of before/after comparisons: an adapted encoder
carries the ids of the speakers and sentences it was trained and validated on
(:class:`SeenIds`, saved with its adapters and merged model); a comparison refuses test
speakers the adapted encoder saw, naming them, unless ``allow_seen=True``. It lives with the
corpus (it is a fact about utterances) so that ``training.finetune`` (which writes it) and
:mod:`probekit.bias.compare` (which checks it) share it without training importing the
analysis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from probekit.errors import CorpusError

__all__ = ["SeenIds", "LeakageError", "SeenIdsError", "check_unseen", "SEEN_FILE"]

#: File written beside adapters / a merged model with the ids it saw.
SEEN_FILE = "seen_ids.json"

class LeakageError(CorpusError):
    """A comparison would test an adapted encoder on speakers it was trained or validated on."""


class SeenIdsError(CorpusError):
    """A ``seen_ids.json`` does not follow its schema (unknown, missing or mistyped keys)."""


# -- the leakage guard ----------------------------------------------------------------------
@dataclass(frozen=True)
class SeenIds:
    """Speakers and sentences an adapted model saw in training or validation.

    ``sentences`` is empty when the corpus has no ``sentence_id``.
    """

    speakers: frozenset = frozenset()
    sentences: frozenset = frozenset()
    note: str = ""

    @classmethod
    def from_corpora(cls, *corpora, note: str = "") -> "SeenIds":
        spk, sent = set(), set()
        for c in corpora:
            if c is None:
                continue
            for u in c:
                spk.add(str(u.speaker))
                if getattr(u, "sentence_id", None) not in (None, ""):
                    sent.add(str(u.sentence_id))
        return cls(frozenset(spk), frozenset(sent), note)

    def to_dict(self) -> dict:
        return {"speakers": sorted(self.speakers), "sentences": sorted(self.sentences),
                "note": self.note}

    def save(self, folder) -> Path:
        path = Path(folder) / SEEN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        from probekit.atomic import write_json
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, folder) -> "SeenIds | None":
        """The ids saved in ``folder`` (a merged model or adapter folder); None if absent."""
        path = Path(folder) / SEEN_FILE
        if not path.is_file():
            return None
        return cls.read(path)

    @classmethod
    def read(cls, path) -> "SeenIds":
        """Read ``seen_ids.json`` through its schema: ``speakers`` (required) and ``sentences``
        lists of strings, ``note`` a string; any other key or type is refused by name, so a
        misspelt file can never make the leakage guard pass."""
        where = f"{path}"
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SeenIdsError(f"{where}: unreadable ({exc})") from None
        if not isinstance(d, dict):
            raise SeenIdsError(f"{where}: expected a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - {"speakers", "sentences", "note"})
        if unknown:
            raise SeenIdsError(f"{where}: unknown key(s) {unknown}; expected speakers, "
                               "sentences, note")
        if "speakers" not in d:
            raise SeenIdsError(f"{where}: no 'speakers' list")
        for key in ("speakers", "sentences"):
            v = d.get(key, [])
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise SeenIdsError(f"{where}: {key!r} must be a list of strings, got "
                                   f"{type(v).__name__}")
        if not isinstance(d.get("note", ""), str):
            raise SeenIdsError(f"{where}: 'note' must be a string")
        return cls(frozenset(d["speakers"]), frozenset(d.get("sentences", [])),
                   d.get("note", ""))


def check_unseen(encoder: str, test_speakers: Sequence[str], seen: SeenIds | None, *,
                 test_sentences: Sequence[str] | None = None, allow_seen: bool = False) -> str:
    """Refuse test speakers (and sentences, when given) that ``encoder`` saw in training.

    Returns a sentence for the report stating what was checked. Raises
    :class:`LeakageError` naming the seen speakers unless ``allow_seen``.
    """
    if seen is None:
        return f"{encoder}: no record of training speakers (not an adapted encoder)"
    spk = sorted(set(map(str, test_speakers)) & seen.speakers)
    sent = sorted(set(map(str, test_sentences or ())) & seen.sentences)
    n = len(set(map(str, test_speakers)))
    if (spk or sent) and not allow_seen:
        what = []
        if spk:
            what.append(f"{len(spk)} of {n} test speakers ({', '.join(spk[:8])}"
                        f"{', ...' if len(spk) > 8 else ''})")
        if sent:
            what.append(f"{len(sent)} test sentences ({', '.join(sent[:5])}"
                        f"{', ...' if len(sent) > 5 else ''})")
        raise LeakageError(f"{encoder} was trained or validated on {' and '.join(what)}; its "
                           "'after' errors would be measured on its own training data. Probe "
                           "held-out speakers, or pass allow_seen=True (--allow-seen) to "
                           "compare anyway")
    if spk or sent:
        return (f"{encoder}: GUARD OVERRIDDEN - {len(spk)} of {n} test speakers"
                f"{f' and {len(sent)} sentences' if sent else ''} were seen in training")
    extra = " and sentences" if test_sentences is not None and seen.sentences else ""
    return (f"{encoder}: none of the {n} test speakers{extra} was among the "
            f"{len(seen.speakers)} training/validation speakers")
