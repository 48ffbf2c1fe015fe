"""Unit and property-based tests of the corpus data model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from probekit.corpus import (MANIFEST_NAME, AudioSource, Corpus, Mispronunciation, Segment,
                             Utterance)
from probekit.errors import CorpusError


def _corpus(spec: dict[str, tuple[str, str]], per_speaker: int = 2) -> Corpus:
    """spec: speaker -> (accent, gender)."""
    utts = []
    for spk, (accent, gender) in spec.items():
        for i in range(per_speaker):
            utts.append(Utterance(id=f"{spk}-{i}", audio=AudioSource(path=f"{spk}/{i}.wav"),
                                  speaker=spk, groups={"accent": accent, "gender": gender},
                                  text="hello", duration=1.0 + i,
                                  words=[("hello", 0.1, 0.5)],
                                  phones=[("HH", 0.1, 0.2), ("AH", 0.2, 0.3)]))
    return Corpus(utts, name="t")


SPEC = {"a1": ("us", "female"), "a2": ("us", "male"), "a3": ("us", "female"),
        "b1": ("gb", "male"), "b2": ("gb", "female")}


def test_filter_by_group_speaker_and_unknown_label():
    c = _corpus(SPEC)
    assert {u.speaker for u in c.filter(accent="gb")} == {"b1", "b2"}
    assert len(c.filter(accent="us", gender="female")) == 4
    assert len(c.filter(speakers=["a1"])) == 2
    with pytest.raises(CorpusError, match="unknown 'accent' label"):
        c.filter(accent="fr")
    with pytest.raises(CorpusError, match="unknown speaker"):
        c.filter(speakers=["zz"])


def test_summary_counts():
    df = _corpus(SPEC).summary("accent")
    assert list(df.index) == ["gb", "us", "ALL"]
    assert df.loc["us", "speakers"] == 3 and df.loc["gb", "utterances"] == 4
    assert df.loc["ALL", "phones"] == 20 and df.loc["ALL", "words"] == 10
    assert df.loc["ALL", "hours"] == pytest.approx(5 * 3.0 / 3600)


def test_corpus_has_no_second_splitter():
    """Speaker-disjoint splits are made on the store's rows (probes/splits.py) and for
    fine-tuning (training/splits.py); Corpus.split, used by tests only, is gone (issue 22)."""
    assert not hasattr(Corpus, "split")


def test_summary_is_describe():
    from probekit.corpus.describe import describe

    c = _corpus(SPEC)
    pd.testing.assert_frame_equal(c.summary("accent"), describe(c, "accent"))
    pd.testing.assert_frame_equal(c.summary(), describe(c))
    assert list(describe(c).index) == ["ALL"]


def test_jsonl_io_lives_beside_the_csv_manifest(tmp_path):
    from probekit.corpus.readers.manifest import load_jsonl, write_jsonl

    c = _corpus(SPEC)
    written = write_jsonl(c, tmp_path / "c")
    assert written == tmp_path / "c" / MANIFEST_NAME
    back = load_jsonl(tmp_path / "c")
    assert [u.to_dict() for u in back] == [u.to_dict() for u in Corpus.load(written)]
    assert written.read_bytes() == c.save(tmp_path / "d" / "m.jsonl").read_bytes()


def test_save_load_round_trip_with_relative_paths_survives_a_move(tmp_path):
    root = tmp_path / "corpus"
    (root / "audio").mkdir(parents=True)
    sf.write(root / "audio" / "x.wav", np.zeros(1600, dtype="float32"), 16000)
    u = Utterance(id="x", audio=AudioSource(path=str(root / "audio" / "x.wav")), speaker="s",
                  groups={"accent": "us"}, text="hi", phones=[("HH", 0.0, 0.05)],
                  mispronunciations=[Mispronunciation(0.0, 0.05, "HH", None, "deletion")])
    path = Corpus([u]).save(root)
    assert json.loads(path.read_text())["audio"]["path"] == "audio/x.wav"
    moved = tmp_path / "elsewhere"
    shutil.move(str(root), str(moved))
    loaded = Corpus.load(moved)
    assert loaded[0].mispronunciations == u.mispronunciations
    samples, sr = loaded[0].load_audio(loaded.root)
    assert sr == 16000 and samples.shape == (1600,)


def test_malformed_jsonl_line_is_named(tmp_path):
    good = Utterance(id="a", audio=AudioSource(path="a.wav"), speaker="s").to_dict()
    (tmp_path / "manifest.jsonl").write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(CorpusError, match=r"manifest.jsonl:2"):
        Corpus.load(tmp_path)
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"id": "b", "audio": "b.wav"}) + "\n")
    with pytest.raises(CorpusError, match=r":1: utterance b: missing required field 'speaker'"):
        Corpus.load(tmp_path)


def test_bad_records_are_rejected():
    with pytest.raises(CorpusError, match="before start"):
        Segment("a", 1.0, 0.5)
    with pytest.raises(CorpusError, match="duplicate utterance id"):
        u = Utterance(id="a", audio=AudioSource(path="a.wav"), speaker="s")
        Corpus([u, u])
    with pytest.raises(CorpusError, match="error type"):
        Mispronunciation(0.0, 0.1, "Z", "S", "swap")


# -- property-based invariants ---------------------------------------------------------------
_label = st.sampled_from(["us", "gb", "ie"])
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@st.composite
def corpora(draw):
    n_spk = draw(st.integers(2, 6))
    utts = []
    for s in range(n_spk):
        accent = draw(_label)
        for i in range(draw(st.integers(1, 3))):
            starts = sorted(draw(st.lists(st.floats(0, 5, allow_nan=False), max_size=4)))
            segs = [(f"p{j}", a, a + draw(st.floats(0, 1))) for j, a in enumerate(starts)]
            utts.append(Utterance(id=f"s{s}-{i}", audio=AudioSource(path=f"a/s{s}_{i}.wav"),
                                  speaker=f"s{s}", groups={"accent": accent},
                                  text=draw(_text), phones=segs,
                                  duration=draw(st.none() | st.floats(0.1, 9))))
    return Corpus(utts)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(c=corpora())
def test_save_load_round_trip_preserves_utterances(tmp_path, c):
    loaded = Corpus.load(c.save(tmp_path / "m.jsonl"))
    for a, b in zip(c, loaded):
        assert a.to_dict() == b.to_dict()
    assert len(loaded) == len(c)


@given(start=st.floats(-1e6, 1e6, allow_nan=False), gap=st.floats(1e-6, 1e6))
def test_segment_with_end_before_start_is_rejected(start, gap):
    end = start - gap
    assume(end < start)  # gaps below float resolution at this magnitude vanish
    with pytest.raises(CorpusError, match="before start"):
        Segment("x", start, end)
    assert Segment("x", end, start).duration > 0
