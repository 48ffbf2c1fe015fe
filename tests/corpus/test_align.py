"""Forced alignment with pocketsphinx on speech synthesised by espeak-ng.

espeak reports its own word times, an independent reference: the aligner's word boundaries
must agree with them. Measured on "the quick brown fox..." (en-us, 16 kHz): median boundary
difference 0.008 s, largest 0.15 s (a stop closure after "quick" that pocketsphinx calls
silence), so the tolerances below are 0.05 s median and 0.2 s max.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("pocketsphinx")
espeak = pytest.importorskip("probekit.corpus.espeak")

from probekit.corpus import AudioSource, Corpus, Utterance  # noqa: E402
from probekit.corpus.align import Aligner, align_corpus, normalise_text  # noqa: E402
from probekit.errors import CorpusError  # noqa: E402

TEXT = "the quick brown fox jumps over the lazy dog"
MEDIAN_TOL, MAX_TOL = 0.05, 0.2


@pytest.fixture(scope="module")
def aligner():
    return Aligner()


@pytest.fixture(scope="module")
def fox():
    return espeak.synthesize(TEXT, voice="en-us", sample_rate=16000)


def test_normalise_text():
    assert normalise_text("Well-known, isn't it? 42!") == ["well", "known", "isn't", "it", "42"]


def test_word_boundaries_agree_with_espeak(aligner, fox):
    res = aligner.align(fox.samples, fox.sample_rate, TEXT)
    assert [w.symbol for w in res.words] == TEXT.split() and res.oov == ()
    ref = [w for w in fox.words]
    diffs = np.abs([[a.start - b.start, a.end - b.end] for a, b in zip(res.words, ref)]).ravel()
    assert np.median(diffs) < MEDIAN_TOL and diffs.max() < MAX_TOL, diffs
    starts = [p.start for p in res.phones]
    assert starts == sorted(starts) and len(res.phones) >= 25
    assert all(0 <= p.start < p.end <= fox.duration + 0.01 for p in res.phones)
    assert {p.symbol for p in res.phones} >= {"DH", "K", "B", "F", "JH", "Z", "D", "G"}
    # Phones of each word lie inside it.
    for w in res.words:
        inside = [p for p in res.phones if w.start <= p.start < w.end]
        assert inside and inside[-1].end <= w.end + 1e-9


def test_other_sample_rates_are_resampled(aligner):
    s = espeak.synthesize(TEXT, voice="en-us", sample_rate=22050)
    res = aligner.align(s.samples, s.sample_rate, TEXT)
    assert abs(res.words[-1].end - s.words[-1].end) < MAX_TOL


def test_out_of_vocabulary_word_is_reported(aligner):
    text = "the quick brown zorblax jumps over the lazy dog"
    s = espeak.synthesize(text, voice="en-us", sample_rate=16000)
    with pytest.warns(UserWarning, match="zorblax"):
        res = aligner.align(s.samples, s.sample_rate, text)
    assert res.oov == ("zorblax",)
    w = res.words[3]
    assert w.symbol == "zorblax" and abs(w.start - s.words[3].start) < MAX_TOL
    assert not [p for p in res.phones if w.start <= p.start < w.end]  # no guessed phones
    with pytest.raises(CorpusError, match="zorblax"):
        Aligner(oov="error").align(s.samples, s.sample_rate, text, utterance="u1")


def test_align_corpus_reports_oov_and_failures(tmp_path, fox):
    sf.write(tmp_path / "fox.wav", fox.samples, fox.sample_rate)
    utts = [
        Utterance(id="ok", audio=AudioSource(path="fox.wav"), speaker="s", text=TEXT),
        Utterance(id="oov", audio=AudioSource(path="fox.wav"), speaker="s",
                  text="the quick brown qwxz jumps over the lazy dog"),
        Utterance(id="empty", audio=AudioSource(path="fox.wav"), speaker="s", text=""),
    ]
    corpus = Corpus(utts, root=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aligned, report = align_corpus(corpus, oov="skip")
    assert report.aligned == ["ok"] and report.oov == {"oov": ["qwxz"]}
    assert set(report.failed) == {"oov", "empty"} and "qwxz" in report.failed["oov"]
    assert aligned.get("ok").phones and not aligned.get("oov").phones
    assert not caught  # "skip" reports without warning
    with pytest.raises(CorpusError, match=r"utterance oov: .*qwxz"):
        align_corpus(corpus, oov="error")
