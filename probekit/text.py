"""One text normalisation for every word/character error rate in probekit and ``training``.

:func:`normalize_text` is Whisper's English normaliser, the rules OpenAI publish for
evaluating Whisper (Radford et al. 2022, Appendix C): lowercase; remove words in brackets or
angle brackets (``[noise]``, ``<laugh>``, EdAcc's tags) and fillers (``hmm``, ``uh``);
expand contractions (``won't`` -> ``will not``, ``don't`` -> ``do not``); spell out titles
(``Mr.`` -> ``mister``); turn spelled numbers into digits (``twenty five`` -> ``25``); unify
British and American spellings (``colour`` -> ``color``); drop punctuation and diacritics.
The implementation is the one ``transformers`` ships
(:class:`transformers.models.whisper.english_normalizer.EnglishTextNormalizer`); its
British-to-American spelling table is OpenAI's ``english.json``, vendored as
``probekit/data/whisper_english_spelling.json`` (MIT, see the ``.LICENSE`` beside it) because
the transformers package does not carry it and the hub is out of reach here. Two steps
around it: typographic apostrophes become ``'`` first (the normaliser would otherwise split
``don’t`` into ``don t``), and tokens left without a letter or digit (a lone ``.``) are
dropped after.

``language`` other than English: Whisper's basic normaliser (lowercase, brackets and
punctuation removed, no number or spelling rules).

:func:`edit_counts` is the one ``jiwer`` error counter (per pair: errors and reference
length); :func:`word_errors` / :func:`char_errors` sum it over a corpus: rate (a fraction in
[0, 1], above 1 only through insertions; percent only when rendered), errors, reference
length. Already-normalised pairs, or raw ones with ``normalize=True``.

Both the CTC probe (:mod:`probekit.probes.ctc`) and the fine-tuning evaluation
(:mod:`training.evaluate`) use this module, so a probe's WER and a fine-tuned model's WER
are computed on the same text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

import numpy as np

__all__ = ["normalize_text", "english_normalizer", "edit_counts", "word_errors", "char_errors",
           "sentence_key"]

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_HAS_ALNUM = re.compile(r"\w")


@lru_cache(maxsize=1)
def english_normalizer():
    """transformers' ``EnglishTextNormalizer`` with OpenAI's spelling table (built once)."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    path = resources.files("probekit") / "data" / "whisper_english_spelling.json"
    return EnglishTextNormalizer(json.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def _basic_normalizer():
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    return BasicTextNormalizer()


def normalize_text(text: str, language: str = "en") -> str:
    """Whisper's evaluation normalisation (see the module doc).

    >>> normalize_text("  Don’t STOP -- now, well-known colour!  ")
    'do not stop now well known color'
    >>> normalize_text("Twenty five <laugh> Mr. Smith")
    '25 mister smith'
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize_text expects a str; got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    norm = english_normalizer() if language in ("en", "english", "English") else _basic_normalizer()
    return " ".join(w for w in norm(text).split() if _HAS_ALNUM.search(w))


def sentence_key(text: str, language: str = "en") -> str | None:
    """The sentence id of a transcript when the corpus has no prompt ids: ``"text:"`` + the
    normalised transcript (:func:`normalize_text`), so two readings of one prompt that differ
    only in case, punctuation or spelling share an id; ``None`` for an empty transcript.

    >>> sentence_key("Please call Stella.")
    'text:please call stella'
    """
    key = normalize_text(text or "", language)
    return f"text:{key}" if key else None


def edit_counts(refs: Sequence[str], hyps: Sequence[str], *, unit: str = "word",
                normalize: bool = False, language: str = "en") -> tuple[np.ndarray, np.ndarray]:
    """The one ``jiwer`` error counter: per (reference, hypothesis) pair, the edit errors
    (substitutions + deletions + insertions) and the reference length (hits + substitutions
    + deletions), in words (``unit="word"``) or characters (``"char"``, spaces count).

    An empty reference gives its insertions and length 0 (its rate is undefined); ``None``
    as a hypothesis is the empty one. ``normalize``: :func:`normalize_text` both sides first.
    Rates are fractions: ``errors.sum() / n_ref.sum()`` (:func:`word_errors`).

    >>> edit_counts(["a b c", "x"], ["a c", "x y"])
    (array([1, 1]), array([3, 1]))
    """
    import jiwer

    refs, hyps = list(refs), list(hyps)
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references for {len(hyps)} hypotheses")
    if unit not in ("word", "char"):
        raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")
    fn = jiwer.process_words if unit == "word" else jiwer.process_characters
    errors, n_ref = np.zeros(len(refs), np.int64), np.zeros(len(refs), np.int64)
    for i, (r, h) in enumerate(zip(refs, hyps)):
        if not isinstance(r, str) or not isinstance(h, (str, type(None))):
            raise TypeError(f"pair {i} is not a pair of str: {type(r).__name__}, "
                            f"{type(h).__name__}")
        if normalize:
            r, h = normalize_text(r, language), normalize_text(h or "", language)
        out = fn(r, h or "")
        errors[i] = out.substitutions + out.deletions + out.insertions
        n_ref[i] = out.hits + out.substitutions + out.deletions
    return errors, n_ref


def _errors(refs: Sequence[str], hyps: Sequence[str], unit: str, normalize: bool,
            language: str) -> tuple[float, int, int]:
    errors, n_ref = edit_counts(refs, hyps, unit=unit, normalize=normalize, language=language)
    keep = n_ref > 0                          # empty references are skipped
    e, n = int(errors[keep].sum()), int(n_ref[keep].sum())
    return (e / n if n else float("nan")), e, n


def word_errors(refs: Sequence[str], hyps: Sequence[str], *, normalize: bool = False,
                language: str = "en") -> tuple[float, int, int]:
    """Corpus-level WER (a fraction), word errors and reference words; empty references
    skipped (:func:`edit_counts`)."""
    return _errors(refs, hyps, "word", normalize, language)


def char_errors(refs: Sequence[str], hyps: Sequence[str], *, normalize: bool = False,
                language: str = "en") -> tuple[float, int, int]:
    """Corpus-level CER (a fraction), character errors and reference characters (spaces
    count); empty references skipped (:func:`edit_counts`)."""
    return _errors(refs, hyps, "char", normalize, language)
