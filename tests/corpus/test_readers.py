"""Each corpus reader on a small fixture in the corpus's real on-disk layout (synthetic audio)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from probekit.corpus import Corpus, Mispronunciation, Segment
from probekit.corpus.readers import available_readers, detect_kind, read_corpus
from probekit.corpus.readers.textgrid import read_textgrid
from probekit.errors import CorpusError

SR = 16000


def tone(path, seconds=1.0, sr=SR, freq=220.0, fmt=None):
    t = np.arange(int(seconds * sr)) / sr
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32"), sr, format=fmt)
    return path


def long_textgrid(tiers: dict[str, list[tuple[float, float, str]]], xmax: float) -> str:
    out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ",
           f"xmax = {xmax} ", "tiers? <exists> ", f"size = {len(tiers)} ", "item []: "]
    for i, (name, ivs) in enumerate(tiers.items(), 1):
        out += [f"    item [{i}]:", '        class = "IntervalTier" ', f'        name = "{name}" ',
                "        xmin = 0 ", f"        xmax = {xmax} ", f"        intervals: size = {len(ivs)} "]
        for j, (a, b, t) in enumerate(ivs, 1):
            out += [f"        intervals [{j}]:", f"            xmin = {a} ",
                    f"            xmax = {b} ", f'            text = "{t}" ']
    return "\n".join(out) + "\n"


def short_textgrid(tiers: dict[str, list[tuple[float, float, str]]], xmax: float) -> str:
    out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "0", str(xmax),
           "<exists>", str(len(tiers))]
    for name, ivs in tiers.items():
        out += ['"IntervalTier"', f'"{name}"', "0", str(xmax), str(len(ivs))]
        for a, b, t in ivs:
            out += [str(a), str(b), f'"{t}"']
    return "\n".join(out) + "\n"


# -- TextGrid -------------------------------------------------------------------------------
@pytest.mark.parametrize("writer", [long_textgrid, short_textgrid])
def test_textgrid_long_and_short_formats_agree(tmp_path, writer):
    tiers = {"words": [(0, 0.3, ""), (0.3, 1.0, 'say ""hi"" [2]')],
             "phones": [(0, 0.3, "sil"), (0.3, 0.6, "S"), (0.6, 1.0, "Z,S,s")]}
    p = tmp_path / "x.TextGrid"
    p.write_text(writer(tiers, 1.0), encoding="utf-16" if writer is short_textgrid else "utf-8")
    tg = read_textgrid(p)
    assert list(tg) == ["words", "phones"]
    assert tg["words"].intervals[1].text == 'say "hi" [2]'
    assert [(i.start, i.end, i.text) for i in tg["phones"].intervals] == tiers["phones"]


def test_textgrid_truncated_is_named(tmp_path):
    p = tmp_path / "bad.TextGrid"
    p.write_text(short_textgrid({"words": [(0, 1, "a")]}, 1.0)[:-8])
    with pytest.raises(CorpusError, match="bad.TextGrid"):
        read_textgrid(p)


# -- JSONL / CSV ---------------------------------------------------------------------------
def test_csv_manifest_extra_columns_are_groups(tmp_path):
    tone(tmp_path / "wav" / "a.wav")
    tone(tmp_path / "wav" / "b.flac", fmt="FLAC")
    (tmp_path / "manifest.csv").write_text(
        "id,audio,speaker,text,accent,gender,phones,offset,duration\n"
        'a,wav/a.wav,s1,hello,us,female,"[[""HH"", 0.1, 0.2]]",,\n'
        "b,wav/b.flac,s2,hi,gb,,,0.25,0.5\n")
    c = read_corpus(tmp_path)
    assert detect_kind(tmp_path) == "csv"
    assert c.get("a").groups == {"accent": "us", "gender": "female"}
    assert c.get("b").groups == {"accent": "gb"}  # empty cell: no label
    assert c.get("a").phones == (Segment("HH", 0.1, 0.2),)
    samples, sr = c.get("b").load_audio(c.root)
    assert sr == SR and len(samples) == SR // 2


def test_csv_bad_row_is_named(tmp_path):
    (tmp_path / "m.csv").write_text("id,audio,speaker,duration\na,a.wav,s,1.0\nb,b.wav,s,long\n")
    with pytest.raises(CorpusError, match=r"m.csv:3 \(utterance b\): field 'duration'"):
        read_corpus(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("id,audio\na,a.wav\n")
    with pytest.raises(CorpusError, match="missing required column"):
        read_corpus(tmp_path / "m.csv")


def test_jsonl_manifest_round_trip(tmp_path):
    tone(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text("id,audio,speaker,accent\na,a.wav,s1,us\n")
    c = read_corpus(tmp_path / "m.csv")
    c.save(tmp_path / "out")
    assert detect_kind(tmp_path / "out") == "jsonl"
    assert read_corpus(tmp_path / "out")[0].groups == {"accent": "us"}


# -- lhotse ---------------------------------------------------------------------------------
def _lhotse_fixture(tmp_path):
    lhotse = pytest.importorskip("lhotse")
    from lhotse.supervision import AlignmentItem

    wav = tone(tmp_path / "audio" / "rec1.wav", seconds=3.0)
    rec = lhotse.Recording.from_file(wav, recording_id="rec1")
    sups = [lhotse.SupervisionSegment(
        id=f"sup{i}", recording_id="rec1", start=start, duration=1.0, text=f"word {i}",
        speaker=f"spk{i}", gender="F" if i else "M",
        custom={"accent": "Scottish", "age": 30 + i},
        alignment={"word": [AlignmentItem("word", start + 0.1, 0.3)],
                   "phone": [AlignmentItem("W", start + 0.1, 0.1),
                             AlignmentItem("ER", start + 0.2, 0.2)]})
        for i, start in enumerate([0.5, 1.75])]
    return lhotse, lhotse.RecordingSet.from_recordings([rec]), lhotse.SupervisionSet.from_segments(sups)


def _check_lhotse(c: Corpus):
    u = c.get("sup1")
    assert u.speaker == "spk1" and u.text == "word 1"
    assert u.groups == {"accent": "Scottish", "gender": "female"}  # age (a number) left out
    assert u.audio.offset == pytest.approx(1.75) and u.audio.duration == pytest.approx(1.0)
    # lhotse alignment times are relative to the recording; ours to the utterance.
    assert u.words[0].start == pytest.approx(0.1) and u.words[0].end == pytest.approx(0.4)
    assert [p.symbol for p in u.phones] == ["W", "ER"]
    assert u.phones[1].end == pytest.approx(0.4)
    samples, sr = u.load_audio(c.root)
    assert len(samples) == sr


def test_lhotse_recordings_and_supervisions_files(tmp_path):
    _, recs, sups = _lhotse_fixture(tmp_path)
    (tmp_path / "m").mkdir()
    recs.to_file(tmp_path / "m" / "x_recordings_all.jsonl.gz")
    sups.to_file(tmp_path / "m" / "x_supervisions_all.jsonl.gz")
    assert detect_kind(tmp_path / "m") == "lhotse"
    _check_lhotse(read_corpus(tmp_path / "m"))


def test_lhotse_cutset_windows_and_attributes(tmp_path):
    lhotse, recs, sups = _lhotse_fixture(tmp_path)
    cuts = lhotse.CutSet.from_manifests(recordings=recs, supervisions=sups)
    # Cut-relative supervision times must be shifted by the cut's start.
    cuts = cuts.trim_to_supervisions(keep_overlapping=False)
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    c = read_corpus(tmp_path / "cuts.jsonl.gz")
    _check_lhotse(c)
    c2 = read_corpus(tmp_path / "cuts.jsonl.gz", kind="lhotse", attributes=["age", "gender"])
    assert c2.get("sup0").groups == {"age": "30", "gender": "male"}


# -- L2-ARCTIC ------------------------------------------------------------------------------
def _l2arctic(tmp_path):
    root = tmp_path / "l2arctic"
    for spk in ("ABA", "NJS"):
        for stem in ("arctic_a0001", "arctic_a0002"):
            tone(root / spk / "wav" / f"{stem}.wav", seconds=1.2, sr=44100)
            (root / spk / "transcript").mkdir(parents=True, exist_ok=True)
            (root / spk / "transcript" / f"{stem}.txt").write_text("Author of the danger trail")
            (root / spk / "textgrid").mkdir(exist_ok=True)
            (root / spk / "textgrid" / f"{stem}.TextGrid").write_text(long_textgrid({
                "words": [(0, 0.2, ""), (0.2, 0.6, "author"), (0.6, 1.2, "of")],
                "phones": [(0, 0.2, "sil"), (0.2, 0.4, "AO1"), (0.4, 0.6, "TH"),
                           (0.6, 0.9, "ER0"), (0.9, 1.2, "AH0")]}, 1.2))
    (root / "NJS" / "annotation").mkdir()
    (root / "NJS" / "annotation" / "arctic_a0001.TextGrid").write_text(short_textgrid({
        "words": [(0, 0.2, ""), (0.2, 0.6, "author"), (0.6, 1.2, "of")],
        "phones": [(0, 0.2, "sil"), (0.2, 0.4, "AO"), (0.4, 0.5, "TH,S,s"),
                   (0.5, 0.6, "sil,AH,a"), (0.6, 0.9, "ER,sil,d"), (0.9, 1.2, "AH")]}, 1.2))
    return root


def test_l2arctic_layout_groups_alignments_and_mispronunciations(tmp_path):
    root = _l2arctic(tmp_path)
    assert detect_kind(root) == "l2arctic"
    c = read_corpus(root)
    assert len(c) == 4 and c.speakers == ["aba", "njs"]
    u = c.get("aba-arctic_a0001")
    assert u.groups == {"l1": "Arabic", "gender": "male"}
    assert u.text == "Author of the danger trail" and u.sentence_id == "arctic_a0001"
    assert [w.symbol for w in u.words] == ["author", "of"]
    assert [p.symbol for p in u.phones] == ["AO1", "TH", "ER0", "AH0"] and not u.mispronunciations
    a = c.get("njs-arctic_a0001")  # manual annotation wins over the forced alignment
    assert a.groups == {"l1": "Spanish", "gender": "female"}
    # Canonical phones are the labels; the addition adds no phone.
    assert [p.symbol for p in a.phones] == ["AO", "TH", "ER", "AH"]
    assert a.mispronunciations == (
        Mispronunciation(0.4, 0.5, "TH", "S", "substitution"),
        Mispronunciation(0.5, 0.6, None, "AH", "addition"),
        Mispronunciation(0.6, 0.9, "ER", None, "deletion"),
    )
    assert read_corpus(root, prefer_annotation=False).get("njs-arctic_a0001").mispronunciations == ()
    samples, sr = a.load_audio(c.root)
    assert sr == 44100 and abs(len(samples) / sr - 1.2) < 1e-3


def test_l2arctic_bad_annotation_label_is_named(tmp_path):
    root = _l2arctic(tmp_path)
    (root / "NJS" / "annotation" / "arctic_a0001.TextGrid").write_text(short_textgrid({
        "phones": [(0, 0.2, "TH,S")]}, 1.2))
    with pytest.raises(CorpusError, match=r"arctic_a0001.TextGrid: phone label 'TH,S'"):
        read_corpus(root)


# -- TIMIT ----------------------------------------------------------------------------------
def _timit(tmp_path, upper=True):
    root = tmp_path / "timit"
    case = str.upper if upper else str.lower
    for part, dr, spk in (("TRAIN", "DR1", "FCJF0"), ("TEST", "DR1", "MDAB0"),
                          ("TRAIN", "DR7", "FAKS0"), ("TRAIN", "DR7", "MREB0")):
        d = root / case(part) / case(dr) / case(spk)
        n = int(1.0 * SR)
        tone(d / case("sa1.wav"), seconds=1.0, fmt="NIST" if upper else "WAV")
        (d / case("sa1.txt")).write_text(f"0 {n} She had your dark suit.\n")
        (d / case("sa1.wrd")).write_text("1600 4800 she\n4800 8000 had\n8000 14400 your\n")
        (d / case("sa1.phn")).write_text(f"0 1600 h#\n1600 3200 sh\n3200 4800 iy\n"
                                         f"4800 6400 hv\n6400 14400 ae\n14400 {n} h#\n")
    return root


@pytest.mark.parametrize("upper", [True, False], ids=["LDC-upper-NIST", "lower-RIFF"])
def test_timit_layout(tmp_path, upper):
    root = _timit(tmp_path, upper)
    assert detect_kind(root) == "timit"
    c = read_corpus(root)
    assert sorted(c.speakers) == ["FAKS0", "FCJF0", "MDAB0", "MREB0"]
    u = c.get("FCJF0-SA1")
    assert u.groups == {"dialect": "DR1", "gender": "female"}
    assert c.get("MREB0-SA1").groups == {"dialect": "DR7", "gender": "male"}
    assert u.text == "She had your dark suit." and u.sentence_id == "SA1"
    assert u.words[0] == Segment("she", 0.1, 0.3)
    assert [p.symbol for p in u.phones] == ["sh", "iy", "hv", "ae"]  # h# left out
    assert u.phones[-1].end == pytest.approx(0.9)
    assert [p.symbol for p in read_corpus(root, keep_silence=True).get("FCJF0-SA1").phones][0] == "h#"
    samples, sr = u.load_audio(c.root)
    assert sr == SR and len(samples) == SR


# -- VCTK -----------------------------------------------------------------------------------
@pytest.mark.parametrize("release", ["0.80", "0.92"])
def test_vctk_layout(tmp_path, release):
    root = tmp_path / "vctk"
    root.mkdir()
    pre = "p" if release == "0.92" else ""
    (root / "speaker-info.txt").write_text(
        "ID  AGE  GENDER  ACCENTS  REGION  COMMENTS\n"
        f"{pre}225  23  F    English    Southern  England\n"
        f"{pre}234  22  F    Scottish  West  Dumfries\n"
        f"{pre}280  25  F    France  Paris  (mic2 files unavailable)\n")
    for spk in ("p225", "p234"):
        for n in ("001", "002"):
            (root / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (root / "txt" / spk / f"{spk}_{n}.txt").write_text("Please call Stella.\n")
            if release == "0.92":
                for mic in ("mic1", "mic2"):
                    tone(root / "wav48_silence_trimmed" / spk / f"{spk}_{n}_{mic}.flac",
                         sr=48000, fmt="FLAC")
            else:
                tone(root / "wav48" / spk / f"{spk}_{n}.wav", sr=48000)
    (root / "txt" / "p225" / "p225_003.txt").write_text("No audio for this one.")
    c = read_corpus(root)
    assert detect_kind(root) == "vctk"
    u = c.get("p234_001")
    assert u.groups == {"accent": "Scottish", "gender": "female"} and u.text == "Please call Stella."
    assert u.sentence_id == c.get("p225_001").sentence_id == "text:please call stella"
    if release == "0.92":
        assert u.audio.path.endswith("p234_001_mic2.flac")
        assert read_corpus(root, mic="mic1").get("p234_001").audio.path.endswith("_mic1.flac")
    # Text without audio is kept with its expected path so validation reports it.
    assert not (c.root / c.get("p225_003").audio.path).exists()


def test_registry_names_every_reader_and_rejects_unknown(tmp_path):
    assert set(available_readers()) == {"csv", "hf", "jsonl", "l2arctic", "lhotse", "mfa", "timit",
                                        "vctk"}
    with pytest.raises(CorpusError, match="cannot tell"):
        detect_kind(tmp_path)
    with pytest.raises(CorpusError, match="unknown corpus kind 'nope'"):
        read_corpus(tmp_path, kind="nope")
