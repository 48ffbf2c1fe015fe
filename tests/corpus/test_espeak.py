"""espeak-ng through ctypes: audio, timings, determinism, the zero-length phone rule."""

from __future__ import annotations

import numpy as np
import pytest

from probekit.corpus.espeak import ESPEAK_SAMPLE_RATE, available_variants, synthesize
from probekit.corpus.phones import INVENTORY
from probekit.errors import CorpusError

SENTENCE = "The birch canoe slid on the smooth planks."


def test_audio_and_alignment_shape():
    s = synthesize(SENTENCE, "en-us", variant="m3")
    assert s.samples.dtype == np.float32 and s.samples.ndim == 1
    assert s.sample_rate == 16000
    assert 1.5 < s.duration < 4.0
    assert np.abs(s.samples).max() <= 1.0
    # espeak joins "on the" into one word event: one segment for both words.
    assert [w.symbol for w in s.words] == ["The", "birch", "canoe", "slid", "on the",
                                           "smooth", "planks"]
    for segs in (s.words, s.phones, s.raw_phones):
        starts = [p.start for p in segs]
        assert starts == sorted(starts)
        assert all(0.0 <= p.start <= p.end <= s.duration for p in segs)
    # Phones do not overlap, and words contain their phones.
    for a, b in zip(s.phones, s.phones[1:]):
        assert a.end <= b.start + 1e-9
    assert s.words[0].start == s.phones[0].start and s.words[-1].end == s.phones[-1].end
    assert all(p.symbol in INVENTORY for p in s.phones)
    assert [p.symbol for p in s.raw_phones][:5] == ["ð", "ə", "b", "ˈɜː", "tʃ"]


def test_native_rate_keeps_length():
    a = synthesize(SENTENCE, "en-us", sample_rate=ESPEAK_SAMPLE_RATE)
    b = synthesize(SENTENCE, "en-us")
    assert a.raw_phones == b.raw_phones
    assert abs(len(a.samples) * 16000 / ESPEAK_SAMPLE_RATE - len(b.samples)) <= 1


def test_deterministic_regardless_of_history():
    # espeak keeps synthesis state between calls; each call must start from scratch.
    first = synthesize(SENTENCE, "en-gb-scotland", variant="f2", rate=160, pitch=40)
    synthesize("Something else entirely, to disturb the state.", "es", variant="m1")
    again = synthesize(SENTENCE, "en-gb-scotland", variant="f2", rate=160, pitch=40)
    assert first.samples.tobytes() == again.samples.tobytes()
    assert first.raw_phones == again.raw_phones and first.words == again.words


def test_zero_length_phones_are_dropped_and_recorded():
    # espeak folds the final /l/ of "full" into the vowel: the event has no duration.
    s = synthesize("Her purse was full.", "en-us")
    zero = [p for p in s.raw_phones if p.end == p.start]
    assert zero and all(p.symbol == "l" for p in zero)
    assert s.dropped_phones == tuple(zero)
    assert all(p.end > p.start for p in s.phones)
    assert len(s.phones) == len(s.raw_phones) - len(zero)


def test_parameters_change_the_audio():
    base = synthesize(SENTENCE, "en-us")
    slow = synthesize(SENTENCE, "en-us", rate=120)
    assert slow.duration > base.duration * 1.2
    assert synthesize(SENTENCE, "en-us", pitch=80).samples.tobytes() != base.samples.tobytes()


def test_language_switch_markers_are_not_phones():
    # The German voice reads "the" with English rules and marks the switch as "(en)".
    s = synthesize("Read verse out loud for the pleasure of it.", "de")
    assert not any(p.symbol.startswith("(") for p in s.raw_phones)


@pytest.mark.parametrize("kwargs, match", [
    ({"voice": "xx-nope"}, "xx-nope"),
    ({"variant": "nobody"}, "nobody"),
    ({"rate": 10}, "rate"),
    ({"pitch": 101}, "pitch"),
])
def test_bad_arguments_name_the_item(kwargs, match):
    with pytest.raises(CorpusError, match=match):
        synthesize(SENTENCE, **kwargs)


def test_empty_text_is_an_error():
    with pytest.raises(CorpusError, match="empty"):
        synthesize("   ")


def test_variants_listed():
    v = available_variants()
    assert {"m1", "m3", "f1", "f2"} <= set(v)
