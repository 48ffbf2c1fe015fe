"""Issue 21 item 1 (corpus readers and study configs): every bad input ends in one clear line.

One table: each case builds a bad input in ``tmp_path`` and returns the command line to run;
the command must exit 2 with no traceback, and its message must name the item (a file, field,
key, row or option: ``expect`` is a regex searched in the error output).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from probekit.cli import main

SR = 16000


def _wav(path: Path, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    return path


def _record(i: int = 0, **over) -> dict:
    rec = {"id": f"u{i}", "audio": f"a{i}.wav", "speaker": f"s{i}", "text": "hello there",
           "groups": {"accent": "x"}}
    rec.update(over)
    return rec


def _jsonl(tmp: Path, records, encoding="utf-8") -> Path:
    folder = tmp / "corpus"
    folder.mkdir()
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    (folder / "manifest.jsonl").write_bytes(("\n".join(lines) + "\n").encode(encoding))
    _wav(folder / "a0.wav")
    return folder


def _validate(path, *extra) -> list[str]:
    return ["corpus", "validate", str(path), "--no-audio", *extra]


# -- corpus readers ---------------------------------------------------------------------------
def manifest_groups_list(tmp):
    return _validate(_jsonl(tmp, [_record(groups=["accent", "x"])])), r"groups"


def manifest_record_not_object(tmp):
    return _validate(_jsonl(tmp, [_record(), "[1, 2, 3]"]), "--kind", "jsonl"), r"manifest.jsonl:2"


def manifest_text_not_string(tmp):
    return _validate(_jsonl(tmp, [_record(text=["hello"])])), r"manifest.jsonl:1.*'text'"


def manifest_group_label_not_string(tmp):
    return _validate(_jsonl(tmp, [_record(groups={"accent": ["x"]})])), r"manifest.jsonl:1.*accent"


def manifest_latin1(tmp):
    return (_validate(_jsonl(tmp, [_record(text="café")], encoding="latin-1"), "--kind", "jsonl"),
            r"manifest.jsonl.*UTF-8")


def manifest_empty(tmp):
    folder = tmp / "corpus"
    folder.mkdir()
    (folder / "manifest.jsonl").write_text("\n")
    return _validate(folder, "--kind", "jsonl"), r"corpus: no utterances"


def csv_missing_columns(tmp):
    (tmp / "m.csv").write_text("id,audio\nu0,a0.wav\n")
    return _validate(tmp / "m.csv"), r"m.csv.*speaker"


def csv_latin1(tmp):
    (tmp / "m.csv").write_bytes("id,audio,speaker,text\nu0,a0.wav,s0,café\n".encode("latin-1"))
    return _validate(tmp / "m.csv"), r"m.csv.*UTF-8"


def reader_unknown_option(tmp):
    folder = _jsonl(tmp, [_record()])
    return _validate(folder, "-o", "colour=red"), r"colour"


def reader_option_wrong_type(tmp):
    argv, _ = mfa_speakers_latin1(tmp)
    (tmp / "speakers.csv").write_text("speaker,accent\ns1,x\n")
    return argv + ["-o", "speaker_chars=abc"], r"mfa: speaker_chars must be an integer"


def l2arctic_transcript_latin1(tmp):
    from tests.corpus.test_readers import _l2arctic

    root = _l2arctic(tmp)
    (root / "ABA" / "transcript" / "arctic_a0002.txt").write_bytes("Déjà vu".encode("latin-1"))
    return _validate(root), r"arctic_a0002.txt:1.*UTF-8"


def lhotse_unknown_recording(tmp):
    lhotse = pytest.importorskip("lhotse")
    wav = _wav(tmp / "audio" / "rec1.wav", 2.0)
    recs = lhotse.RecordingSet.from_recordings([lhotse.Recording.from_file(wav, recording_id="rec1")])
    sups = lhotse.SupervisionSet.from_segments([lhotse.SupervisionSegment(
        id="sup0", recording_id="nope", start=0.0, duration=1.0, speaker="s0", text="hi")])
    (tmp / "m").mkdir()
    recs.to_file(tmp / "m" / "x_recordings.jsonl.gz")
    sups.to_file(tmp / "m" / "x_supervisions.jsonl.gz")
    return _validate(tmp / "m"), r"sup0.*'nope'"


def lhotse_duplicate_ids(tmp):
    lhotse = pytest.importorskip("lhotse")
    wav = _wav(tmp / "audio" / "rec1.wav", 2.0)
    recs = lhotse.RecordingSet.from_recordings([lhotse.Recording.from_file(wav, recording_id="rec1")])
    sup = lhotse.SupervisionSegment(id="sup0", recording_id="rec1", start=0.0, duration=1.0,
                                    speaker="s0", text="hi")
    (tmp / "m").mkdir()
    recs.to_file(tmp / "m" / "x_recordings.jsonl.gz")
    line = json.dumps(sup.to_dict())
    (tmp / "m" / "x_supervisions.jsonl").write_text(line + "\n" + line + "\n")
    return _validate(tmp / "m"), r"x_supervisions.jsonl.*sup0"


def lhotse_duplicate_recordings(tmp):
    lhotse = pytest.importorskip("lhotse")
    wav = _wav(tmp / "audio" / "rec1.wav", 2.0)
    rec = lhotse.Recording.from_file(wav, recording_id="rec1")
    sups = lhotse.SupervisionSet.from_segments([lhotse.SupervisionSegment(
        id="sup0", recording_id="rec1", start=0.0, duration=1.0, speaker="s0", text="hi")])
    (tmp / "m").mkdir()
    line = json.dumps(rec.to_dict())
    (tmp / "m" / "x_recordings.jsonl").write_text(line + "\n" + line + "\n")
    sups.to_file(tmp / "m" / "x_supervisions.jsonl.gz")
    return _validate(tmp / "m"), r"x_recordings.jsonl.*rec1"


def hf_truncated_parquet(tmp):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder = tmp / "ds"
    folder.mkdir()
    table = pa.table({"audio": [str(_wav(tmp / "a0.wav"))], "speaker_id": ["s0"], "text": ["hi"]})
    pq.write_table(table, folder / "train.parquet")
    data = (folder / "train.parquet").read_bytes()
    (folder / "train.parquet").write_bytes(data[: len(data) // 2])
    return _validate(folder), r"train.parquet"


def mfa_speakers_latin1(tmp):
    root = tmp / "mfa"
    _wav(root / "s1" / "s1_001.wav")
    (root / "s1" / "s1_001.TextGrid").write_text(
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = 1\n'
        'tiers? <exists>\nsize = 1\nitem []:\n    item [1]:\n        class = "IntervalTier"\n'
        '        name = "phones"\n        xmin = 0\n        xmax = 1\n'
        '        intervals: size = 1\n        intervals [1]:\n            xmin = 0\n'
        '            xmax = 1\n            text = "AH"\n')
    (tmp / "speakers.csv").write_bytes("speaker,accent\ns1,Français\n".encode("latin-1"))
    return (_validate(root, "--kind", "mfa", "-o", f"speakers={tmp / 'speakers.csv'}"),
            r"speakers.csv.*UTF-8")


# -- study configs ----------------------------------------------------------------------------
_BASE = 'name = "t"\n[corpus]\nsynthetic = "small"\n[[encoders]]\nname = "whisper-tiny.en"\n'


def _study(tmp, text, base=_BASE, top=""):
    (tmp / "study.toml").write_text(top + base + text)
    return ["study", "show", str(tmp / "study.toml")]


def study_n_boot_string(tmp):
    return _study(tmp, '[analysis]\nn_boot = "many"\n'), r"study.toml.*n_boot.*integer"


def study_alpha_string(tmp):
    return _study(tmp, '[analysis]\nalpha = "five percent"\n'), r"study.toml.*alpha.*number"


def study_seeds_int(tmp):
    return _study(tmp, "[tasks.phone]\nseeds = 3\n"), r"study.toml.*seeds.*list"


def study_seeds_empty(tmp):
    return _study(tmp, "[tasks.phone]\nseeds = []\n"), r"study.toml.*seeds.*empty"


def study_encoders_int(tmp):
    (tmp / "study.toml").write_text('encoders = 3\n')
    return ["study", "show", str(tmp / "study.toml")], r"study.toml.*encoders.*list"


def study_tasks_not_table(tmp):
    return _study(tmp, "", top='tasks = ["phone"]\n'), r"study.toml.*tasks.*table"


def study_synthetic_unknown_key(tmp):
    base = 'name = "t"\n[corpus]\nsynthetic = "small"\ncolour = 1\n[[encoders]]\nname = "w"\n'
    return _study(tmp, "", base), r"study.toml.*colour.*known.*speakers_per_group"


def study_synthetic_wrong_type(tmp):
    base = ('name = "t"\n[corpus]\nsynthetic = "small"\nspeakers_per_group = "two"\n'
            '[[encoders]]\nname = "w"\n')
    return _study(tmp, "", base), r"study.toml.*speakers_per_group.*integer"


def study_reader_option_unknown(tmp):
    (tmp / "m.csv").write_text("id,audio,speaker\nu0,a0.wav,s0\n")
    base = ('[corpus]\npath = "m.csv"\nkind = "csv"\ndelimiter = ";"\n'
            '[[encoders]]\nname = "w"\n')
    return _study(tmp, "", base), r"study.toml.*corpus.delimiter.*csv reader.*known.*name"


def study_unknown_analysis_key(tmp):
    return _study(tmp, "[analysis]\nn_bootstrap = 10\n"), r"n_bootstrap.*known.*n_boot"


def study_unknown_encoder_key(tmp):
    return _study(tmp, 'layer = 3\n'), r"encoders\[0\].*layer.*known.*layers"


def study_name_not_string(tmp):
    (tmp / "study.toml").write_text('name = 5\n[[encoders]]\nname = "w"\n')
    return ["study", "show", str(tmp / "study.toml")], r"study.toml.*name.*string"


def study_training_steps_string(tmp):
    return _study(tmp, '[training]\nsteps = "ten"\n'), r"study.toml.*training.*steps.*integer"


def study_toml_latin1(tmp):
    (tmp / "study.toml").write_bytes((_BASE + 'title = "études"\n').encode("latin-1"))
    return ["study", "show", str(tmp / "study.toml")], r"study.toml:6.*UTF-8"


def study_layers_int(tmp):
    return _study(tmp, "layers = 3\n"), r"study.toml.*encoders\[0\].layers.*list"


def study_method_unknown_key(tmp):
    return (_study(tmp, '[training]\nmethods = [{method = "lora", rank = 4}]\n'),
            r"study.toml.*methods\[0\].rank.*known")


def study_metadata_not_json(tmp):
    from probekit.outdir import claim_output
    from probekit.study.run import STUDY_CONTENTS, STUDY_STAMP

    cmd = _study(tmp, "")
    out = claim_output(tmp / "out", "study", contents=STUDY_CONTENTS)
    (out / STUDY_STAMP).write_text("not json {")
    return ["study", "run", cmd[-1], "--out", str(out), "--quiet"], r"study.json"


CASES = [manifest_groups_list, manifest_record_not_object, manifest_text_not_string,
         manifest_group_label_not_string, manifest_latin1, manifest_empty, csv_missing_columns,
         csv_latin1, reader_unknown_option, reader_option_wrong_type, l2arctic_transcript_latin1,
         lhotse_unknown_recording, lhotse_duplicate_ids,
         lhotse_duplicate_recordings, hf_truncated_parquet, mfa_speakers_latin1,
         study_n_boot_string, study_alpha_string, study_seeds_int, study_seeds_empty,
         study_encoders_int, study_tasks_not_table, study_synthetic_unknown_key,
         study_synthetic_wrong_type, study_reader_option_unknown, study_unknown_analysis_key, study_unknown_encoder_key,
         study_name_not_string, study_training_steps_string, study_toml_latin1,
         study_layers_int, study_method_unknown_key, study_metadata_not_json]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_one_clear_line(case, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    argv, expect = case(tmp_path / "in")
    try:
        rc = main(argv)
    except Exception as exc:  # noqa: BLE001 - an escaped exception is the failure we test for
        pytest.fail(f"traceback: {type(exc).__name__}: {exc}")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    assert rc == 2, text
    assert len(out.err.strip().splitlines()) == 1, out.err  # one line
    assert re.search(expect, out.err, re.S), out.err


def test_training_schema_covers_every_training_field():
    """The [training] schema and TrainingSpec cannot drift apart (a field without a type would
    reach TrainingSpec unchecked; a typed key without a field would be accepted and dropped)."""
    from dataclasses import fields

    from probekit.study.config import TRAINING_SCHEMA, TrainingSpec

    assert set(TRAINING_SCHEMA) == {f.name for f in fields(TrainingSpec)} | {"objective"}
