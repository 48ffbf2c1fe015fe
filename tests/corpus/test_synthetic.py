"""The synthetic accented corpus: determinism, real timings, real group differences, CLI."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from probekit.cli import main
from probekit.corpus import Corpus
from probekit.corpus.phones import INVENTORY, VOWELS
from probekit.corpus.synthetic import (ACCENTS, PRESETS, SYNTHETIC_STAMP_NAME, SyntheticConfig,
                                       build_synthetic_corpus, harvard_sentences, speaker_plan)
from probekit.errors import CorpusError

# Voiceless fricatives: the clearest zero-crossing contrast with vowels.
HISSES = {"s", "ʃ", "f", "θ", "x"}


@pytest.fixture(scope="session")
def small(tmp_path_factory) -> Corpus:
    return build_synthetic_corpus("small", tmp_path_factory.mktemp("small") / "corpus",
                                  progress=False)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rebuild_is_byte_identical(small, tmp_path):
    again = build_synthetic_corpus("small", tmp_path / "again", progress=False)
    a, b = _files(small.root), _files(again.root)
    assert sorted(a) == sorted(b)
    wavs = [k for k in a if k.endswith(".wav")]
    assert len(wavs) == len(small) == PRESETS["small"].n_utterances
    for k in a:
        assert a[k] == b[k], k


def test_audio_files(small):
    for u in small:
        info = sf.info(str(small.root / u.audio.path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert abs(info.frames / 16000 - u.duration) < 1e-6
        assert not Path(u.audio.path).is_absolute()


def test_alignments_are_ordered_and_inside_the_audio(small):
    for u in small:
        assert u.phones and u.words
        for segs in (u.phones, u.words):
            assert [s.start for s in segs] == sorted(s.start for s in segs)
            assert all(0.0 <= s.start < s.end <= u.duration + 1e-6 for s in segs)
        assert all(a.end <= b.start + 1e-6 for a, b in zip(u.phones, u.phones[1:]))


def _zcr_by_class(corpus: Corpus, relabel=None) -> tuple[float, float]:
    """Mean zero-crossing rate (crossings per sample) inside voiceless fricatives and vowels.

    ``relabel(phones, rng)`` may return a corrupted alignment to show the check can fail.
    """
    rng = np.random.default_rng(0)
    rates: dict[str, list[float]] = defaultdict(list)
    for u in corpus:
        x, sr = u.load_audio(corpus.root)
        phones = relabel(list(u.phones), rng) if relabel else u.phones
        for p in phones:
            seg = x[int(p.start * sr): int(p.end * sr)]
            if len(seg) < 160:  # under 10 ms: too short to measure
                continue
            zcr = float(np.mean(np.abs(np.diff(np.signbit(seg).astype(np.int8)))))
            if p.symbol in HISSES:
                rates["hiss"].append(zcr)
            elif p.symbol in VOWELS:
                rates["vowel"].append(zcr)
    return float(np.mean(rates["hiss"])), float(np.mean(rates["vowel"]))


def _shuffle_labels(phones, rng):
    syms = [p.symbol for p in phones]
    rng.shuffle(syms)
    return [type(p)(s, p.start, p.end) for p, s in zip(phones, syms)]


def _shift(phones, rng, by=0.15):
    return [type(p)(p.symbol, p.start + by, p.end + by) for p in phones]


def test_fricatives_hiss_where_the_alignment_says(small):
    hiss, vowel = _zcr_by_class(small)
    # Measured: 0.47 vs 0.15 crossings per sample (small preset); corrupted: ratio <= 1.2.
    assert hiss > 2.5 * vowel, (hiss, vowel)
    # The same check on corrupted alignments fails: the times carry the information.
    for corrupt in (_shuffle_labels, _shift):
        hiss_c, vowel_c = _zcr_by_class(small, corrupt)
        assert hiss_c < 1.6 * vowel_c, (corrupt.__name__, hiss_c, vowel_c)


def test_groups_read_the_same_sentences_differently(small):
    by = defaultdict(dict)
    for u in small:
        by[u.sentence_id].setdefault(u.group("accent"), [p.symbol for p in u.phones])
    shared = [s for s, g in by.items() if {"en-us", "es"} <= set(g)]
    assert shared, "some sentence must be read in both groups"
    for sid in shared:
        assert by[sid]["en-us"] != by[sid]["es"], sid
    assert all(len(g) >= 2 for g in by.values()), "sentences repeat across groups"


def test_every_phone_is_in_the_inventory(small):
    used = {p.symbol for u in small for p in u.phones}
    assert used <= set(INVENTORY), used - set(INVENTORY)
    stamp = json.loads((small.root / SYNTHETIC_STAMP_NAME).read_text())
    assert stamp["unmapped_phones"] == {}


def test_zero_length_phones_never_reach_the_manifest(small):
    assert all(p.end > p.start for u in small for p in u.phones)
    stamp = json.loads((small.root / SYNTHETIC_STAMP_NAME).read_text())
    assert isinstance(stamp["dropped_zero_length_phones"], dict)


def test_labels(small):
    cfg = PRESETS["small"]
    assert small.attributes == ["accent", "gender", "l1"]
    assert small.groups("accent") == sorted(cfg.groups)
    genders = small.speaker_groups("gender")
    for u in small:
        variant = u.speaker.rsplit("_", 1)[1]
        assert genders[u.speaker] == {"m": "male", "f": "female"}[variant[0]]
        assert u.group("l1") == ACCENTS[u.group("accent")].l1
        assert u.sentence_id and u.text == dict(harvard_sentences())[u.sentence_id]
    for accent in cfg.groups:
        sub = small.filter(accent=accent)
        assert set(sub.speaker_groups("gender").values()) == {"male", "female"}


def test_default_preset_is_big_enough():
    cfg = PRESETS["default"]
    assert len(cfg.groups) >= 8 and cfg.speakers_per_group >= 6
    assert 400 <= cfg.n_utterances <= 600
    assert {ACCENTS[g].l1 for g in cfg.groups} >= {"english", "spanish"}
    plan = speaker_plan(cfg)
    assert len({s.id for s in plan}) == len(plan) == len(cfg.groups) * cfg.speakers_per_group
    # Each group reads every sentence block, so sentences repeat across groups.
    n_blocks = cfg.sentence_pool // cfg.sentences_per_speaker
    for g in cfg.groups:
        assert {s.block for s in plan if s.accent == g} == set(range(n_blocks))


def test_config_errors_name_the_field():
    with pytest.raises(CorpusError, match="klingon"):
        SyntheticConfig(groups=("en-us", "klingon"))
    with pytest.raises(CorpusError, match="multiple"):
        SyntheticConfig(sentences_per_speaker=4, sentence_pool=6)
    with pytest.raises(CorpusError, match="preset"):
        build_synthetic_corpus("huge")


def test_cache_reuse_and_crash_recovery(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBEKIT_CACHE_DIR", str(tmp_path))
    cfg = SyntheticConfig(name="tiny", groups=("en-us",), speakers_per_group=1,
                          sentences_per_speaker=1, sentence_pool=1)
    # A crashed build of another process left a partial folder; a cache entry lost its stamp.
    target = tmp_path / "corpora" / f"tiny-{cfg.fingerprint()}"
    crashed = target.parent / f".{target.name}.partial-999999999"
    crashed.mkdir(parents=True)
    target.mkdir()
    (target / "manifest.jsonl").write_text("half written")
    corpus = build_synthetic_corpus(cfg, progress=False)
    assert corpus.root == target and len(corpus) == 1
    assert not crashed.exists()
    stamp_time = (target / SYNTHETIC_STAMP_NAME).stat().st_mtime_ns
    assert len(build_synthetic_corpus(cfg, progress=False)) == 1
    assert (target / SYNTHETIC_STAMP_NAME).stat().st_mtime_ns == stamp_time  # reused, not rebuilt


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["corpus", "synth", "--preset", "small", "--out", str(out), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "en-gb-scotland" in printed
    assert len(Corpus.load(out)) == PRESETS["small"].n_utterances
    # Same config again: reused. Another seed, or a foreign folder: refused.
    assert main(["corpus", "synth", "--preset", "small", "--out", str(out), "--seed", "1"]) == 0
    assert main(["corpus", "synth", "--preset", "small", "--out", str(out), "--seed", "2"]) == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["corpus", "synth", "--preset", "small", "--out", str(foreign)]) == 2
    assert "not a finished synthetic corpus" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"
