"""Issue 15: corpora in the forms researchers hold them (HF datasets, MFA output), every
corpus command on every layout, format checks in validation, phone foldings, intersections."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from probekit.cli import main
from probekit.corpus import Corpus, Segment
from probekit.corpus.model import AudioSource, Utterance
from probekit.corpus.phonesets import FOLDINGS, fold_corpus, fold_phones, folding_table
from probekit.corpus.readers import detect_kind, read_corpus
from probekit.corpus.validate import validate_corpus
from probekit.errors import CorpusError

from tests.corpus.test_readers import _l2arctic, _lhotse_fixture, long_textgrid, tone

SR = 16000


def _hf_rows(tmp_path, n_spk=4, per=2):
    wavs = tmp_path / "src"
    rows = {"audio": [], "text": [], "speaker": [], "id": [], "accent": [], "gender": []}
    for s in range(n_spk):
        for k in range(per):
            p = tone(wavs / f"s{s}_{k}.wav", seconds=0.5, freq=200 + 30 * s)
            rows["audio"].append(str(p))
            rows["text"].append(f"hello number {k}")
            rows["speaker"].append(f"spk{s}")
            rows["id"].append(f"spk{s}-{k}")
            rows["accent"].append("scottish" if s % 2 else "indian")
            rows["gender"].append("F" if s < 2 else "M")
    return rows


@pytest.fixture
def hf_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(_hf_rows(tmp_path)).cast_column(
        "audio", datasets.Audio(sampling_rate=SR, decode=False))
    # Embed the audio as bytes (what hub datasets and save_to_disk copies hold).
    ds = ds.map(lambda r: {"audio": {"bytes": open(r["audio"]["path"], "rb").read(),
                                     "path": r["audio"]["path"].rsplit("/", 1)[-1]}})
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=SR, decode=False))
    out = tmp_path / "hf_saved"
    ds.save_to_disk(str(out))
    for f in (tmp_path / "src").iterdir():  # the dataset must not depend on the source files
        f.unlink()
    return out


def test_hf_save_to_disk_with_mapping(hf_folder, tmp_path):
    assert detect_kind(hf_folder) == "hf"
    c = read_corpus(hf_folder, groups={"accent": "accent", "gender": "gender"},
                    audio_dir=tmp_path / "audio_cache")
    assert len(c) == 8 and c.speakers == ["spk0", "spk1", "spk2", "spk3"]
    u = c.get("spk1-0")
    assert u.groups == {"accent": "scottish", "gender": "female"} and u.text == "hello number 0"
    samples, sr = u.load_audio(c.root)
    assert sr == SR and len(samples) == SR // 2
    # A second read reuses the written audio.
    c2 = read_corpus(hf_folder, kind="hf", groups={"accent": "accent"},
                     audio_dir=tmp_path / "audio_cache")
    assert c2.get("spk1-0").audio.path == u.audio.path


def test_hf_parquet_folder_and_presets(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = _hf_rows(tmp_path)
    cv = {"path": rows["id"], "audio": rows["audio"], "sentence": rows["text"],
          "client_id": rows["speaker"], "accent": rows["accent"], "gender": rows["gender"],
          "age": ["twenties"] * len(rows["id"])}
    (tmp_path / "pq").mkdir()
    datasets.Dataset.from_dict(cv).to_parquet(str(tmp_path / "pq" / "train-0.parquet"))
    assert detect_kind(tmp_path / "pq") == "hf"
    c = read_corpus(tmp_path / "pq", preset="common_voice")
    assert c.get("spk0-0").groups == {"accent": "indian", "gender": "female", "age": "twenties"}
    assert c.get("spk0-0").speaker == "spk0" and c.get("spk0-0").text == "hello number 0"
    with pytest.raises(CorpusError, match=r"lacks column.*'accents' \(for groups.accent\)"):
        read_corpus(tmp_path / "pq", kind="hf", preset="common_voice", groups={"accent": "accents"})
    with pytest.raises(CorpusError, match="unknown preset"):
        read_corpus(tmp_path / "pq", kind="hf", preset="nope")


def _mfa(tmp_path):
    root = tmp_path / "mfa"
    for spk in ("alice", "bob"):
        for k in range(2):
            tone(root / spk / f"{spk}_{k}.wav", seconds=1.0)
            (root / spk / f"{spk}_{k}.lab").write_text("say hi")
            (root / spk / f"{spk}_{k}.TextGrid").write_text(long_textgrid({
                "words": [(0, 0.2, ""), (0.2, 0.6, "say"), (0.6, 1.0, "hi")],
                "phones": [(0, 0.2, "sil"), (0.2, 0.4, "S"), (0.4, 0.6, "EY1"),
                           (0.6, 0.8, "HH"), (0.8, 1.0, "AY1")]}, 1.0))
    (root / "speakers.csv").write_text("speaker,accent,gender\nalice,us,F\nbob,gb,M\n")
    return root


def test_mfa_output_reader(tmp_path):
    root = _mfa(tmp_path)
    assert detect_kind(root) == "mfa"
    c = read_corpus(root)
    assert len(c) == 4 and c.speakers == ["alice", "bob"]
    u = c.get("alice_0")
    assert u.groups == {"accent": "us", "gender": "female"} and u.text == "say hi"
    assert [w.symbol for w in u.words] == ["say", "hi"]
    assert [p.symbol for p in u.phones] == ["S", "EY1", "HH", "AY1"]
    assert u.load_audio(c.root)[1] == SR
    # TextGrids in a separate output folder, audio in the input corpus.
    out = tmp_path / "aligned"
    for tg in root.rglob("*.TextGrid"):
        (out / tg.parent.name).mkdir(parents=True, exist_ok=True)
        tg.rename(out / tg.parent.name / tg.name)
    c2 = read_corpus(out, kind="mfa", audio_dir=root)
    assert len(c2) == 4 and c2.get("bob_1").groups["accent"] == "gb"


def test_summary_reads_every_layout(tmp_path, capsys):
    lhotse, recs, sups = _lhotse_fixture(tmp_path)
    (tmp_path / "lh").mkdir()
    recs.to_file(tmp_path / "lh" / "recordings.jsonl.gz")
    sups.to_file(tmp_path / "lh" / "supervisions.jsonl.gz")
    assert main(["corpus", "summary", str(tmp_path / "lh")]) == 0
    out = capsys.readouterr().out
    assert "read as lhotse" in out and "Scottish" in out
    assert main(["corpus", "summary", str(_mfa(tmp_path)), "--by", "accent"]) == 0
    assert "read as mfa" in capsys.readouterr().out


def test_summary_on_datasets_folder(hf_folder, capsys):
    assert main(["corpus", "summary", str(hf_folder)]) == 0
    assert "read as hf" in capsys.readouterr().out


def test_validate_warns_on_sample_rate_and_channels(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros((8000, 2), dtype="float32") + 0.1, 8000)
    u = Utterance(id="u1", audio=AudioSource(path="a.wav", sample_rate=16000), speaker="s",
                  text="x")
    rep = validate_corpus(Corpus([u], root=tmp_path), min_speakers_per_group=1)
    rules = {p.rule: p for p in rep.problems}
    assert rep.ok  # warnings only: extraction still converts
    assert "16000 Hz" in rules["sample_rate_mismatch"].message
    assert "8000 Hz" in rules["sample_rate_mismatch"].message
    assert rules["sample_rate_mismatch"].utterance == "u1"
    assert "2 channels" in rules["channels_mismatch"].message


def test_lhotse_manifest_claiming_16k_for_8k_file_warns(tmp_path, capsys):
    lhotse = pytest.importorskip("lhotse")
    wav = tone(tmp_path / "lh" / "r.wav", seconds=1.0, sr=8000)
    rec = lhotse.Recording(id="r", sources=[lhotse.AudioSource("file", [0], str(wav))],
                           sampling_rate=16000, num_samples=16000, duration=1.0)
    sup = lhotse.SupervisionSegment(id="s1", recording_id="r", start=0, duration=0.5,
                                    text="hi", speaker="a")
    lhotse.RecordingSet.from_recordings([rec]).to_file(tmp_path / "lh" / "recordings.jsonl.gz")
    lhotse.SupervisionSet.from_segments([sup]).to_file(tmp_path / "lh" / "supervisions.jsonl.gz")
    assert main(["corpus", "validate", str(tmp_path / "lh"), "--min-speakers", "1"]) == 0
    out = capsys.readouterr().out
    assert "sample_rate_mismatch (warning, 1)" in out and "s1 [audio.sample_rate]" in out


def test_phone_foldings():
    assert set(FOLDINGS) == {"timit39", "arpabet-nostress", "arpabet-ipa", "ipa-arpabet"}
    t = folding_table("timit39")
    assert len(t) == 61 and len({v for v in t.values() if v}) == 39
    segs = [Segment(x, i, i + 1) for i, x in enumerate(["ax-h", "q", "pcl", "zh", "ux", "hv"])]
    assert [s.symbol for s in fold_phones(segs, "timit39")] == ["ah", "sil", "sh", "uw", "hh"]
    segs = [Segment(x, 0, 1) for x in ["AH0", "AH1", "ER0", "T"]]
    assert [s.symbol for s in fold_phones(segs, "arpabet-nostress")] == ["AH", "AH", "ER", "T"]
    assert [s.symbol for s in fold_phones(segs, "arpabet-ipa")] == ["ə", "ʌ", "ɚ", "t"]
    # TIMIT, L2-ARCTIC (ARPAbet) and the synthetic inventory meet in one label set.
    from probekit.corpus.phones import INVENTORY
    timit = fold_phones([Segment(x, 0, 1) for x in ["iy", "dh", "ax", "r"]], ["timit39", "arpabet-ipa"])
    assert all(s.symbol in INVENTORY for s in timit)
    back = fold_phones([Segment(x, 0, 1) for x in ["ð", "ə", "β"]], "ipa-arpabet")
    assert [s.symbol for s in back] == ["DH", "AH", "β"]  # unknown kept as written
    with pytest.raises(CorpusError, match="unknown phone folding"):
        folding_table("nope")


def test_fold_corpus_counts_unknown(tmp_path):
    u = Utterance(id="u", audio=AudioSource(path="a.wav"), speaker="s",
                  phones=[("AH1", 0, 0.1), ("XX", 0.1, 0.2)])
    c, unknown = fold_corpus(Corpus([u]), "arpabet-ipa")
    assert [p.symbol for p in c[0].phones] == ["ʌ", "XX"] and unknown == {"arpabet-ipa:XX": 1}
    with pytest.raises(CorpusError, match="XX"):
        fold_corpus(Corpus([u]), "arpabet-ipa", strict=True)


def test_l2arctic_phone_labels(tmp_path):
    root = _l2arctic(tmp_path)
    canon = read_corpus(root).get("njs-arctic_a0001")
    heard = read_corpus(root, phone_labels="perceived").get("njs-arctic_a0001")
    assert [p.symbol for p in canon.phones] == ["AO", "TH", "ER", "AH"]
    assert [p.symbol for p in heard.phones] == ["AO", "S", "AH", "AH"]  # sub, addition; no deletion
    assert heard.mispronunciations == canon.mispronunciations
    with pytest.raises(CorpusError, match="phone_labels"):
        read_corpus(root, phone_labels="both")


def _grouped(n_per: dict[tuple[str, str], int]) -> Corpus:
    utts = []
    for (accent, gender), n in n_per.items():
        for s in range(n):
            spk = f"{accent}-{gender}-{s}"
            utts.append(Utterance(id=spk + "-u", audio=AudioSource(path="a.wav"), speaker=spk,
                                  groups={"accent": accent, "gender": gender}, text="x"))
    return Corpus(utts)


def test_intersection_attribute_and_minimum():
    c = _grouped({("es", "female"): 4, ("es", "male"): 4, ("gb", "female"): 4})
    x = c.with_intersection("accent*gender")
    assert "accent*gender" in x.attributes
    assert x.groups("accent*gender") == ["es*female", "es*male", "gb*female"]
    small = _grouped({("es", "female"): 4, ("gb", "male"): 2})
    with pytest.raises(CorpusError, match=r"gb\*male \(2\).*at least 4 speakers"):
        small.with_intersection("accent*gender")
    with pytest.raises(CorpusError, match="malformed"):
        c.with_intersection("accent*")
