"""Issue 18: a researcher's own corpus is never silently wrong (sentence ids from every reader,
explicit speaker rules, duplicate audio)."""

from __future__ import annotations

import pandas as pd
import pytest

from probekit.corpus.readers import read_corpus
from probekit.probes.splits import content_split, sentence_status

from tests.corpus.test_ingest import _hf_rows
from tests.corpus.test_readers import long_textgrid, tone

SENTENCES = ["Please call Stella.", "Ask her to bring these things.", "Six spoons of fresh snow peas."]
SPEAKERS = {"s1": "us", "s2": "gb", "s3": "us", "s4": "gb"}


def _meta(c) -> pd.DataFrame:
    return pd.DataFrame({"utt_id": [u.id for u in c], "speaker": [u.speaker for u in c],
                         "group:accent": [u.groups.get("accent", SPEAKERS.get(u.speaker, "?"))
                                          for u in c],
                         "sentence_id": [u.sentence_id or "" for u in c]})


def _assert_sentence_disjoint(c):
    ids = {u.sentence_id for u in c}
    assert None not in ids and len(ids) == len(SENTENCES), ids
    # Variants of one prompt (case, punctuation) share one id.
    meta = _meta(c)
    for seed in range(3):
        split = content_split(meta, "group:accent", seed)
        assert split.sentences_disjoint
        assert sentence_status(meta, split) == "disjoint"
        train = set(meta["sentence_id"].iloc[split.train])
        assert not train & set(meta["sentence_id"].iloc[split.test])


def _mfa_tree(root, flat=False):
    for spk in SPEAKERS:
        for k, text in enumerate(SENTENCES):
            d = root if flat else root / spk
            stem = f"{spk}_utt{k}"
            tone(d / f"{stem}.wav", seconds=0.4)
            (d / f"{stem}.lab").write_text(text.upper() if spk == "s2" else text)
            (d / f"{stem}.TextGrid").write_text(long_textgrid({
                "words": [(0, 0.4, "x")], "phones": [(0, 0.2, "S"), (0.2, 0.4, "IY")]}, 0.4))
    (root / "speakers.csv").write_text("speaker,accent\n" + "".join(
        f"{s},{a}\n" for s, a in SPEAKERS.items()))
    return root


def test_mfa_both_layouts_give_sentence_disjoint_splits(tmp_path):
    root = _mfa_tree(tmp_path / "mfa")
    _assert_sentence_disjoint(read_corpus(root, kind="mfa"))
    out = tmp_path / "aligned"
    for tg in root.rglob("*.TextGrid"):
        (out / tg.parent.name).mkdir(parents=True, exist_ok=True)
        tg.rename(out / tg.parent.name / tg.name)
    _assert_sentence_disjoint(read_corpus(out, kind="mfa", audio_dir=root))


def test_lhotse_without_sentence_ids_gives_sentence_disjoint_splits(tmp_path):
    lhotse = pytest.importorskip("lhotse")
    recs, sups = [], []
    for spk in SPEAKERS:
        for k, text in enumerate(SENTENCES):
            rid = f"{spk}-{k}"
            recs.append(lhotse.Recording.from_file(tone(tmp_path / "a" / f"{rid}.wav", 0.4),
                                                   recording_id=rid))
            sups.append(lhotse.SupervisionSegment(
                id=rid, recording_id=rid, start=0, duration=0.4, speaker=spk,
                text=text if spk != "s3" else text.rstrip("."), custom={"accent": SPEAKERS[spk]}))
    lhotse.RecordingSet.from_recordings(recs).to_file(tmp_path / "recordings.jsonl.gz")
    lhotse.SupervisionSet.from_segments(sups).to_file(tmp_path / "supervisions.jsonl.gz")
    _assert_sentence_disjoint(read_corpus(tmp_path, kind="lhotse"))


def test_hf_without_sentence_ids_gives_sentence_disjoint_splits(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = _hf_rows(tmp_path, n_spk=4, per=3)
    rows["text"] = [SENTENCES[int(i.rsplit("-", 1)[1])] for i in rows["id"]]
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "hf"))
    c = read_corpus(tmp_path / "hf", kind="hf", groups={"accent": "accent"})
    _assert_sentence_disjoint(c)


def test_csv_manifest_without_sentence_column_gives_sentence_disjoint_splits(tmp_path):
    lines = ["id,audio,speaker,text,accent"]
    for spk, acc in SPEAKERS.items():
        for k, text in enumerate(SENTENCES):
            tone(tmp_path / f"{spk}{k}.wav", 0.2)
            lines.append(f'{spk}-{k},{spk}{k}.wav,{spk},"{text}",{acc}')
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    c = read_corpus(tmp_path / "manifest.csv")
    _assert_sentence_disjoint(c)
    c.save(tmp_path / "out")  # and the JSONL manifest it writes keeps them
    _assert_sentence_disjoint(read_corpus(tmp_path / "out"))


def _flat(root, names):
    for stem in names:
        tone(root / f"{stem}.wav", seconds=0.3, freq=150 + 10 * len(stem) + hash(stem) % 50)
        (root / f"{stem}.TextGrid").write_text(long_textgrid({
            "words": [(0, 0.3, "hi")], "phones": [(0, 0.3, "AY")]}, 0.3))
    return root


@pytest.mark.parametrize("voice", ["", "alba_", "en-"])
def test_flat_textgrid_folder_of_six_speakers_reads_as_six(tmp_path, voice, capsys):
    from probekit.cli import main

    names = [f"{voice}spk{s:02d}_utt{k}" for s in range(1, 7) for k in range(3)]
    root = _flat(tmp_path / "flat", names)
    c = read_corpus(root, kind="mfa")
    assert len(c.speakers) == 6, c.speakers
    assert "last '_'/'-' field" in c.speaker_rule
    assert main(["corpus", "summary", str(root), "--kind", "mfa"]) == 0
    assert "speakers from: file name without its last" in capsys.readouterr().out


def test_speaker_pattern_and_collapse_warning(tmp_path, capsys):
    from probekit.cli import main
    from probekit.corpus.validate import validate_corpus

    names = [f"{v}_spk{s:02d}_utt{k}" for v in ("alba", "bdl") for s in range(1, 4) for k in range(3)]
    root = _flat(tmp_path / "flat", names)
    c = read_corpus(root, kind="mfa", speaker_pattern=r"[a-z]+_(?P<speaker>spk\d+)")
    assert sorted(c.speakers) == ["spk01", "spk02", "spk03"] and "speaker_pattern" in c.speaker_rule
    # A rule that merges speakers (the voice prefix) is warned about.
    merged = read_corpus(root, kind="mfa", speaker_chars=4)
    assert len(merged.speakers) == 2
    rules = {p.rule for p in validate_corpus(merged, check_audio=False).problems}
    assert "speaker_rule" in rules
    assert "speaker_rule" not in {p.rule for p in validate_corpus(read_corpus(root, kind="mfa"),
                                                                  check_audio=False).problems}
    assert main(["corpus", "validate", str(root), "--kind", "mfa", "-o", "speaker_chars=4",
                 "--no-audio"]) == 0
    assert "several speakers may be merged" in capsys.readouterr().out
    from probekit.errors import CorpusError
    with pytest.raises(CorpusError, match="does not match the file name"):
        read_corpus(root, kind="mfa", speaker_pattern=r"zz(\d)")


def test_validate_warns_on_duplicate_audio_and_unknown_sentences(tmp_path):
    import shutil

    from probekit.corpus.model import AudioSource, Corpus, Utterance
    from probekit.corpus.validate import validate_corpus

    a = tone(tmp_path / "a.wav", 0.3)
    shutil.copy(a, tmp_path / "b.wav")  # same bytes, another file
    tone(tmp_path / "c.wav", 0.3, freq=400)
    utts = [Utterance(id=i, audio=AudioSource(path=f), speaker=s, text=t)
            for i, f, s, t in [("u1", "a.wav", "s1", "hi"), ("u2", "b.wav", "s2", "hi"),
                               ("u3", "c.wav", "s1", "yo"), ("u4", "c.wav", "s1", "yo")]]
    rep = validate_corpus(Corpus(utts, root=tmp_path))
    dup = [p for p in rep.problems if p.rule == "audio_duplicate"]
    assert {p.utterance for p in dup} == {"u2", "u4"}
    assert "speakers 's1' and 's2'" in dup[0].message and rep.ok
    rep = validate_corpus(Corpus([utts[0].replace(text="")], root=tmp_path))
    assert "no sentence id: its sentence may repeat" in rep.problems[0].message


def test_results_record_sentence_split_and_probe_warns_without_ids(tmp_path, caplog):
    from probekit.probes.grid import run_grid
    from probekit.probes.results import ResultsTable

    from tests.probes.test_grid import FakeStore, _meta
    meta = _meta(speakers=2)
    run_grid(FakeStore(meta), "phone", tmp_path / "a", seeds=(0,), layers=["conv"],
             progress=False, train_sets=("all",))
    assert set(ResultsTable(tmp_path / "a").load()["sentence_split"]) == {"disjoint"}
    with caplog.at_level("WARNING"):
        run_grid(FakeStore(meta.assign(sentence_id="")), "phone", tmp_path / "b", seeds=(0,),
                 layers=["conv"], progress=False, train_sets=("all",))
    assert set(ResultsTable(tmp_path / "b").load()["sentence_split"]) == {"unknown"}
    assert "sentences may repeat across the split" in caplog.text
