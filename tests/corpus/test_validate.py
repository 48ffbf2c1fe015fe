"""Every validation rule fires on its own bad fixture; a clean corpus gives no problems."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from probekit.corpus import AudioSource, Corpus, Utterance
from probekit.corpus.validate import RULES, TIME_TOLERANCE, validate_corpus

SR = 16000
SPEAKERS = {"a1": ("us", "female"), "a2": ("us", "male"), "a3": ("us", "female"),
            "b1": ("gb", "female"), "b2": ("gb", "male"), "b3": ("gb", "male")}


def _wav(path, samples, subtype=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, SR, subtype=subtype)
    return path.name


def _utt(root, spk, i, **changes) -> Utterance:
    name = f"{spk}-{i}.wav"
    if not (root / name).exists():
        t = np.arange(SR) / SR
        # distinct audio per utterance (byte-identical files are an audio_duplicate warning)
        freq = 200 + 10 * i + 30 * (list(SPEAKERS).index(spk) if spk in SPEAKERS else 7)
        _wav(root / name, (0.2 * np.sin(2 * np.pi * freq * t)).astype("float32"))
    accent, gender = SPEAKERS.get(spk, ("ie", "male"))
    u = Utterance(id=f"{spk}-{i}", audio=AudioSource(path=name), speaker=spk,
                  groups={"accent": accent, "gender": gender}, text="hello world",
                  words=[("hello", 0.1, 0.5), ("world", 0.5, 0.99)],
                  phones=[("HH", 0.1, 0.2), ("AH", 0.2, 0.5), ("W", 0.5, 0.99)], duration=1.0)
    return u.replace(**changes)


def _corpus(root, bad: Utterance | None = None, extra: list[Utterance] = ()) -> Corpus:
    utts = [_utt(root, s, i) for s in SPEAKERS for i in range(2)]
    if bad is not None:
        utts = [bad if u.id == bad.id else u for u in utts]
    return Corpus(utts + list(extra), root=root, name="v")


def _garbage(root, name):
    (root / name).write_bytes(b"\x00\x17garbage, not audio" * 10)
    return name


# rule -> builder(root) -> corpus with exactly that problem; expected utterance id
CASES = {
    "audio_missing": (lambda r: _corpus(r, _utt(r, "a1", 0, audio=AudioSource(path="nope.wav"))),
                      "a1-0"),
    "audio_format": (lambda r: _corpus(r, _utt(r, "a1", 0, audio=AudioSource(
        path=_garbage(r, "x.m4a")))), "a1-0"),
    "audio_corrupt": (lambda r: _corpus(r, _utt(r, "a1", 0, audio=AudioSource(
        path=_garbage(r, "x.wav")))), "a1-0"),
    "audio_empty": (lambda r: _corpus(r, _utt(r, "a1", 0, audio=AudioSource(
        path=_wav(r / "e.wav", np.zeros(0, "float32"))), words=(), phones=())), "a1-0"),
    "audio_nan": (lambda r: _corpus(r, _utt(r, "a1", 0, audio=AudioSource(
        path=_wav(r / "n.wav", np.r_[np.zeros(SR - 1), np.nan].astype("float32"), "FLOAT")))),
                  "a1-0"),
    "audio_slice": (lambda r: _corpus(r, _utt(r, "b2", 1, audio=AudioSource(
        path="b2-1.wav", offset=0.8, duration=0.5))), "b2-1"),
    "duration_mismatch": (lambda r: _corpus(r, _utt(r, "a2", 0, duration=2.0)), "a2-0"),
    "sample_rate_mismatch": (lambda r: _corpus(r, _utt(r, "a2", 0, audio=AudioSource(
        path="a2-0.wav", sample_rate=8000))), "a2-0"),
    "channels_mismatch": (lambda r: _corpus(r, _utt(r, "a3", 0, audio=AudioSource(
        path=_wav(r / "st.wav", np.full((SR, 2), 0.1, "float32"))))), "a3-0"),
    "text_empty": (lambda r: _corpus(r, _utt(r, "a2", 1, text="  ")), "a2-1"),
    "alignment_past_end": (lambda r: _corpus(r, _utt(r, "b1", 0, phones=[
        ("HH", 0.1, 0.2), ("AH", 0.2, 1.0 + 2 * TIME_TOLERANCE)])), "b1-0"),
    "alignment_overlap": (lambda r: _corpus(r, _utt(r, "b1", 1, words=[
        ("hello", 0.1, 0.6), ("world", 0.5, 0.9)])), "b1-1"),
    "group_missing": (lambda r: _corpus(r, _utt(r, "a1", 1, groups={"gender": "female"})),
                      "a1-1"),
    "speaker_label_conflict": (lambda r: _corpus(r, _utt(r, "a2", 1, groups={
        "accent": "gb", "gender": "male"})), "a2-1"),
    "group_too_small": (lambda r: _corpus(r, extra=[_utt(r, "c1", 0)]), "c1-0"),
    "audio_duplicate": (lambda r: _corpus(r, _utt(r, "b3", 1, audio=AudioSource(
        path="a1-0.wav"))), "b3-1"),
    "speaker_rule": (lambda r: Corpus([_utt(r, s, 0) for s in SPEAKERS], root=r, speaker_rule=
                                      "file name without its last '_'/'-' field"), "a1-0"),
}


def test_every_rule_has_a_case():
    assert set(CASES) == set(RULES)


def test_clean_corpus_has_no_problems(tmp_path):
    report = validate_corpus(_corpus(tmp_path))
    assert report.ok and report.problems == [] and report.dropped == []
    assert len(report.frame()) == 0


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires_on_its_fixture(tmp_path, rule):
    build, utt = CASES[rule]
    corpus = build(tmp_path)
    report = validate_corpus(corpus)
    df = report.frame()
    assert set(df["rule"]) == {rule}, df.to_string()
    assert utt in set(df["utterance"])
    assert all(df["field"].str.len() > 0) and all(df["message"].str.len() > 0)
    clean, dropped = report.clean_corpus()
    if RULES[rule] == "error":
        assert not report.ok and utt in report.dropped and utt not in {u.id for u in clean}
        assert {p.utterance for p in dropped} == set(report.dropped)
        assert validate_corpus(clean).ok  # the cleaned corpus passes
    else:
        assert report.ok and len(clean) == len(corpus)


def test_small_group_cascade_leaves_a_valid_corpus(tmp_path):
    # b1 and b2 lose their audio, so gb keeps one speaker (b3) and is dropped; that leaves
    # a2 the only male speaker, so a2 goes too. Each drop is reported with its reason.
    c = _corpus(tmp_path)
    utts = [u.replace(audio=AudioSource(path="gone.wav")) if u.speaker in ("b1", "b2") else u
            for u in c]
    report = validate_corpus(Corpus(utts, root=tmp_path))
    by_rule = report.by_rule()
    assert {p.utterance for p in by_rule["audio_missing"]} == {"b1-0", "b1-1", "b2-0", "b2-1"}
    small = {(p.utterance, p.field) for p in by_rule["group_too_small"]}
    assert small == {("b3-0", "groups.accent"), ("b3-1", "groups.accent"),
                     ("a2-0", "groups.gender"), ("a2-1", "groups.gender")}
    assert any("group accent='gb' has 1 speaker(s) (b3)" in p.message
               for p in by_rule["group_too_small"])
    clean, _ = report.clean_corpus()
    assert clean.speakers == ["a1", "a3"] and validate_corpus(clean).ok


def test_cli_validate_exit_status(tmp_path, capsys):
    from probekit.cli import main

    good = _corpus(tmp_path / "good")
    good.save(tmp_path / "good")
    assert main(["corpus", "validate", str(tmp_path / "good")]) == 0
    bad = CASES["text_empty"][0](tmp_path / "bad")
    bad.save(tmp_path / "bad")
    assert main(["corpus", "validate", str(tmp_path / "bad"), "--kind", "jsonl",
                 "--write-clean", str(tmp_path / "clean")]) == 1
    out = capsys.readouterr().out
    assert "text_empty (error, 1):" in out and "a2-1 [text]" in out
    assert len(Corpus.load(tmp_path / "clean")) == 11
