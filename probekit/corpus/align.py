"""Forced alignment of transcripts with pocketsphinx (``pip install probekit[align]``).

pocketsphinx 5 ships a US-English acoustic model and the CMU pronouncing dictionary. Alignment
runs in two passes over the same audio (word alignment, then sub-word alignment); results come
in 10 ms frames, so boundaries are multiples of 0.01 s. Phones are ARPAbet without stress
(``DH``, ``AH``...); silences are left out.

Words missing from the dictionary are never dropped silently. With ``oov="warn"`` (default)
each is aligned with a crude letter-by-letter pronunciation (pocketsphinx 5 has no
grapheme-to-phoneme model, and its spoken-noise filler cannot be force-aligned) so the rest of
the sentence still aligns: the word keeps its own symbol and time span, but its guessed phones
are left out of ``phones``; it is listed in the result and a warning is issued. When the guess
is too far from what was said, alignment fails and the utterance is reported as failed. ``oov="error"`` raises :class:`CorpusError`;
``oov="skip"`` leaves such utterances unaligned (listed in the report).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from probekit.corpus.model import Corpus, Segment, Utterance
from probekit.errors import CorpusError

__all__ = ["Aligner", "AlignmentResult", "AlignmentReport", "align_corpus", "normalise_text",
           "FRAME_SHIFT", "ALIGN_SAMPLE_RATE"]

#: pocketsphinx frame shift in seconds.
FRAME_SHIFT = 0.01
#: The acoustic model's sample rate (Hz); other rates are resampled.
ALIGN_SAMPLE_RATE = 16000
# One ARPAbet phone per letter: only good enough to let the word absorb its stretch of audio.
_LETTER_PHONES = dict(zip("abcdefghijklmnopqrstuvwxyz", (
    "AE B K D EH F G HH IH JH K L M N AA P K R S T AH V W K.S IY Z").split()))
_NON_SPEECH = {"<s>", "</s>", "<sil>", "[NOISE]", "SIL", "+NSN+", "+SPN+"}
_OOV_MODES = ("warn", "error", "skip")


def normalise_text(text: str) -> list[str]:
    """Lower-case dictionary tokens: punctuation removed, inner apostrophes kept, hyphens split.

    Numbers are not spelled out (they come back as out-of-vocabulary words).
    """
    text = re.sub(r"[^\w'\s]+", " ", text.lower().replace("-", " "))
    return [t.strip("'") for t in text.split() if t.strip("'")]


@dataclass(frozen=True)
class AlignmentResult:
    """Alignment of one utterance: times in seconds from its start.

    Attributes
    ----------
    words, phones : tuple of Segment
    oov : tuple of str
        Transcript words not in the dictionary (aligned with a guessed pronunciation; no phones).
    """

    words: tuple[Segment, ...]
    phones: tuple[Segment, ...]
    oov: tuple[str, ...] = ()


@dataclass
class AlignmentReport:
    """What :func:`align_corpus` did.

    Attributes
    ----------
    aligned : list of str
        Utterance ids that received new alignments.
    oov : dict of str to list of str
        Out-of-vocabulary words by utterance id.
    failed : dict of str to str
        Utterances left unaligned, with the reason.
    """

    aligned: list[str] = field(default_factory=list)
    oov: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def oov_words(self) -> list[str]:
        """Distinct out-of-vocabulary words over the corpus, sorted."""
        return sorted({w for ws in self.oov.values() for w in ws})


class Aligner:
    """A reusable pocketsphinx decoder (loading the model takes a fraction of a second).

    Parameters
    ----------
    oov : {"warn", "error", "skip"}
        What to do with words missing from the dictionary (see the module docstring).
    **config
        Extra pocketsphinx options (e.g. ``hmm=``, ``dict=`` for another model).
    """

    def __init__(self, *, oov: str = "warn", **config) -> None:
        if oov not in _OOV_MODES:
            raise CorpusError(f"oov must be one of {_OOV_MODES}, got {oov!r}")
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise CorpusError(
                f"forced alignment needs pocketsphinx: pip install 'probekit[align]' ({exc})"
            ) from exc
        self.oov = oov
        self._guessed: set[str] = set()  # OOV words given a letter-based pronunciation
        # No language model: alignment only needs the acoustic model and the dictionary.
        # bestpath off, as pocketsphinx's own `align` command does: the lattice path can give
        # a phone fewer frames than its HMM has states and the second pass then fails
        # (cmusphinx/pocketsphinx#339, #500). Wide, equal beams: the stock unequal beams make
        # the word pass lose the grammar's path on synthetic and accented speech (#464).
        options = dict(beam=1e-100, pbeam=1e-100, wbeam=1e-100, bestpath=False,
                       loglevel="FATAL")
        options.update(config)
        self._decoder = Decoder(samprate=ALIGN_SAMPLE_RATE, lm=None, **options)

    def missing_words(self, tokens: list[str]) -> list[str]:
        """Tokens absent from the pronouncing dictionary, in order, without repeats."""
        return list(dict.fromkeys(t for t in tokens if t in self._guessed
                                  or self._decoder.lookup_word(t) is None))

    def _guess(self, word: str) -> None:
        if word in self._guessed:
            return
        phones = " ".join(_LETTER_PHONES[c].replace(".", " ") for c in word
                          if c in _LETTER_PHONES) or "AH"
        self._decoder.add_word(word, phones, True)
        self._guessed.add(word)

    def align(self, samples: np.ndarray, sample_rate: int, text: str,
              utterance: str = "<audio>") -> AlignmentResult:
        """Align ``text`` to ``samples``.

        Parameters
        ----------
        samples : numpy.ndarray, shape (n_samples,)
            Mono audio, float in [-1, 1].
        sample_rate : int
            Hz (resampled to 16 kHz when different).
        text : str
            The transcript.
        utterance : str
            Named in errors and warnings.

        Raises
        ------
        CorpusError
            For an empty transcript, OOV words with ``oov="error"`` (or ``"skip"``: the caller
            decides), or audio that cannot be aligned to the text.
        """
        tokens = normalise_text(text)
        if not tokens:
            raise CorpusError(f"utterance {utterance}: empty transcript, nothing to align")
        oov = self.missing_words(tokens)
        if oov and self.oov != "warn":
            raise CorpusError(f"utterance {utterance}: words not in the pronouncing "
                              f"dictionary: {oov}")
        if oov:
            warnings.warn(f"utterance {utterance}: words not in the pronouncing dictionary "
                          f"{oov} are aligned with a guessed pronunciation; their phones are "
                          "left out", stacklevel=2)
            for w in oov:
                self._guess(w)
        pcm = _to_pcm16(samples, sample_rate)
        d = self._decoder
        try:
            d.set_align_text(" ".join(tokens))
            _run(d, pcm)
            d.set_alignment()
            _run(d, pcm)
            alignment = d.get_alignment()
        except RuntimeError as exc:
            raise CorpusError(f"utterance {utterance}: pocketsphinx could not align the "
                              f"transcript ({exc})") from exc
        if alignment is None:
            raise CorpusError(f"utterance {utterance}: pocketsphinx found no alignment")
        words, phones = _segments(alignment, tokens, oov, utterance)
        return AlignmentResult(words, phones, tuple(oov))


def _to_pcm16(samples: np.ndarray, sample_rate: int) -> bytes:
    x = np.asarray(samples, dtype=np.float64)
    if sample_rate != ALIGN_SAMPLE_RATE:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(sample_rate), ALIGN_SAMPLE_RATE)
        x = resample_poly(x, ALIGN_SAMPLE_RATE // g, int(sample_rate) // g)
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def _run(decoder, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def _frames(symbol: str, start: int, duration: int) -> Segment:
    return Segment(symbol, round(start * FRAME_SHIFT, 3), round((start + duration) * FRAME_SHIFT, 3))


def _segments(alignment, tokens: list[str], oov: list[str], utterance: str):
    words: list[Segment] = []
    phones: list[Segment] = []
    spoken = iter(tokens)
    for w in alignment:
        name = re.sub(r"\(\d+\)$", "", w.name)  # pronunciation variants: "the(2)"
        if name in _NON_SPEECH:
            continue
        token = next(spoken, None)
        if token is None:
            raise CorpusError(f"utterance {utterance}: the aligner returned more words than "
                              "the transcript has")
        words.append(_frames(token, w.start, w.duration))
        if token in oov:  # guessed phones are not evidence of what was said
            continue
        phones.extend(_frames(ph.name, ph.start, ph.duration) for ph in w
                      if ph.name not in _NON_SPEECH)
    if next(spoken, None) is not None:
        raise CorpusError(f"utterance {utterance}: the aligner returned fewer words than the "
                          "transcript has")
    return tuple(words), tuple(phones)


def align_corpus(corpus: Corpus, *, oov: str = "warn", overwrite: bool = True,
                 aligner: Aligner | None = None,
                 progress: bool = False) -> tuple[Corpus, AlignmentReport]:
    """Force-align every utterance's transcript to its audio.

    Parameters
    ----------
    corpus : Corpus
    oov : {"warn", "error", "skip"}
        Out-of-vocabulary policy (module docstring). ``"error"`` raises at the first
        utterance with an OOV word, naming it and the words.
    overwrite : bool
        Replace existing alignments; ``False`` aligns only utterances without phones.
    aligner : Aligner or None
        A decoder to reuse.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    corpus : Corpus
        Same utterances, with ``words`` and ``phones`` from the aligner.
    report : AlignmentReport
        Aligned ids, OOV words per utterance, and utterances that could not be aligned (they
        keep their previous alignments).
    """
    aligner = aligner or Aligner(oov="error" if oov == "error" else "warn")
    report = AlignmentReport()
    out: list[Utterance] = []
    from tqdm.auto import tqdm

    for u in tqdm(corpus, desc="align", unit="utt", disable=not progress):
        if not overwrite and u.phones:
            out.append(u)
            continue
        try:
            tokens = normalise_text(u.text)
            missing = aligner.missing_words(tokens)
            if missing:
                report.oov[u.id] = missing
                if oov == "skip":
                    raise CorpusError(f"words not in the pronouncing dictionary: {missing}")
            samples, sr = u.load_audio(corpus.root)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # one summary warning below instead
                res = aligner.align(samples, sr, u.text, utterance=u.id)
        except CorpusError as exc:
            if oov == "error" and u.id in report.oov:
                raise
            report.failed[u.id] = str(exc)
            out.append(u)
            continue
        report.aligned.append(u.id)
        out.append(u.replace(words=res.words, phones=res.phones))
    if report.oov and oov == "warn":
        warnings.warn(f"{len(report.oov)} utterance(s) have words not in the pronouncing "
                      f"dictionary, aligned with guessed pronunciations and no phones: "
                      f"{report.oov_words[:20]}", stacklevel=2)
    return corpus._derive(out), report
