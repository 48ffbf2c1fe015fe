"""Issue 25: never touch what probekit did not write, never analyse what it cannot vouch for.

Each test is one bullet of the issue: a user's folder survives every writing command byte for
byte, a file read back is checked against what wrote it, and impossible values are refused
where they are parsed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from probekit.cli import main
from probekit.outdir import OUTPUT_STAMP_NAME, claim_output, read_stamp
from probekit.probes.grid import run_grid

from tests.probes.test_grid import FakeStore, _meta
from tests.store.conftest import small_corpus, tiny_encoder, tiny_model_dir  # noqa: F401 (fixtures)


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _user_folder(folder: Path, files: dict) -> dict:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return _snapshot(folder)


def _results(tmp_path, tag="A", name="res", **kw):
    s = FakeStore(_meta(**kw))
    s.fingerprint = {"encoder": "fake", "corpus": tag}
    s.index = {"attributes": ["accent"]}
    res = tmp_path / name
    run_grid(s, "phone", res, seeds=(0,), layers=["conv"], progress=False)
    return res


_AN = ["--n-boot", "20", "--n-perm", "20", "-q"]


# -- 1. one ownership rule --------------------------------------------------------------------

def test_lookalike_analysis_folder_survives_analyze_byte_for_byte(tmp_path):
    res = _results(tmp_path)
    user = tmp_path / "paper"
    user.mkdir()
    before = _user_folder(user, {"findings.md": "# my findings", "layer_curves.csv": "a,b\n1,2\n",
                                 "draft.tex": "\\section{x}", "data/raw.csv": "x\n1\n"})
    for extra in ([], ["--overwrite"]):
        assert main(["analyze", str(res), "--out", str(user), *_AN, *extra]) == 2
        assert _snapshot(user) == before
    assert read_stamp(user) is None  # a layout look-alike is never adopted


def test_overwrite_clears_only_what_the_stamp_lists(tmp_path):
    res = _results(tmp_path)
    an = tmp_path / "an"
    assert main(["analyze", str(res), "--out", str(an), *_AN]) == 0
    (an / "my_notes.txt").write_text("keep me")
    assert main(["analyze", str(res), "--out", str(an), *_AN]) == 0
    assert (an / "my_notes.txt").read_text() == "keep me"
    stamp = read_stamp(an)
    assert stamp["command"] == "analyze" and "findings.md" in stamp["contents"]


def test_analyze_never_writes_over_its_own_input(tmp_path):
    study = claim_output(tmp_path / "study", "study")
    res = _results(tmp_path, name="study/work/results")
    parts = _snapshot(res)
    assert main(["analyze", str(res), "--out", str(study), "--overwrite", *_AN]) == 2
    assert main(["analyze", str(res), "--out", str(res), "--overwrite", *_AN]) == 2
    assert _snapshot(res) == parts


def test_report_default_writes_inside_the_analysis_only(tmp_path):
    res = _results(tmp_path)
    an = tmp_path / "an"
    assert main(["analyze", str(res), "--out", str(an), *_AN]) == 0
    before = _user_folder(tmp_path, {"report.md": "my report", "report_figures/fig.png": "png"})
    outside = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("an/")}
    assert main(["report", str(an)]) == 0
    assert {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("an/")} == outside
    assert (an / "report" / "report.html").is_file()
    assert _snapshot(tmp_path)["report.md"] == before["report.md"]
    # A new analysis in the same folder removes the report of the old one.
    assert main(["analyze", str(res), "--out", str(an), *_AN]) == 0
    assert not (an / "report").exists()


def test_report_refuses_a_non_empty_user_folder(tmp_path):
    res = _results(tmp_path)
    an = tmp_path / "an"
    assert main(["analyze", str(res), "--out", str(an), *_AN]) == 0
    user = tmp_path / "site"
    user.mkdir()
    before = _user_folder(user, {"notes.txt": "mine", "report.md": "my own report"})
    for extra in ([], ["--overwrite"]):
        assert main(["report", str(an), "--out", str(user), *extra]) == 2
        assert _snapshot(user) == before


def test_compare_refuses_a_user_folder(tmp_path):
    from probekit.probes.results import ResultsTable

    from tests.bias.test_compare import _table

    ResultsTable(tmp_path / "res").append(_table())
    user = tmp_path / "cmp"
    user.mkdir()
    before = _user_folder(user, {"comparison.csv": "my,table\n", "thesis.tex": "x"})
    argv = ["-q", "compare", str(tmp_path / "res"), "--before", "base", "--out"]
    assert main(argv + [str(user)]) == 2
    assert _snapshot(user) == before
    assert main(argv + [str(tmp_path / "res")]) == 2  # its own input
    assert main(argv + [str(tmp_path / "mine")]) == 0  # a new folder is claimed and stamped
    assert read_stamp(tmp_path / "mine")["kind"] == "comparison"


def test_train_refuses_a_user_folder_and_its_corpus(tmp_path, monkeypatch, capsys):
    import probekit.corpus.readers as readers

    def no_training(*a, **k):
        raise AssertionError("train started although --out is not probekit's")

    monkeypatch.setattr(readers, "read_corpus", no_training)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    before = _user_folder(corpus, {"manifest.jsonl": "{}\n", "transcripts.csv": "mine\n"})
    assert main(["train", "--corpus", str(corpus), "--out", str(corpus), "-q"]) == 2
    assert "input of this command" in capsys.readouterr().err
    user = tmp_path / "runs"
    user.mkdir()
    mine = _user_folder(user, {"transcripts.csv": "my transcripts\n"})
    assert main(["train", "--corpus", str(corpus), "--out", str(user), "-q"]) == 2
    assert _snapshot(corpus) == before and _snapshot(user) == mine


def _jsonl_corpus(folder: Path) -> Path:
    import numpy as np
    import soundfile as sf

    folder.mkdir()
    rows = []
    for i in range(4):
        sf.write(str(folder / f"u{i}.wav"), np.zeros(1600, dtype=np.float32), 16000)
        rows.append({"id": f"u{i}", "speaker": f"s{i % 2}", "text": "a cat",
                     "audio": {"path": f"u{i}.wav"}, "groups": {"accent": f"g{i % 2}"}})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_corpus_commands_never_rewrite_the_corpus_in_place(tmp_path, capsys):
    corpus = _jsonl_corpus(tmp_path / "corpus")
    before = _snapshot(corpus)
    main(["corpus", "validate", str(corpus), "--no-audio", "--write-clean", str(corpus), "-q"])
    assert "input of this command" in capsys.readouterr().err
    assert _snapshot(corpus) == before
    assert main(["corpus", "align", str(corpus), "--out", str(corpus), "-q"]) == 2
    assert "input of this command" in capsys.readouterr().err
    assert _snapshot(corpus) == before
    main(["corpus", "validate", str(corpus), "--no-audio", "--write-clean",
          str(tmp_path / "clean"), "-q"])
    assert (tmp_path / "clean" / "manifest.jsonl").is_file()
    assert read_stamp(tmp_path / "clean")["kind"] == "corpus"


def test_study_overwrite_never_adopts_a_lookalike(tmp_path):
    from probekit.demo import demo_config
    from probekit.study.run import StudyError, prepare_output

    user = tmp_path / "study"
    user.mkdir()
    before = _user_folder(user, {"study.json": json.dumps({"fingerprint": "x", "config": {}}),
                                 "work/stores/enc/store.json": "{}", "work/notes.txt": "mine"})
    for overwrite in (False, True):
        with pytest.raises(StudyError, match="not written by probekit"):
            prepare_output(user, demo_config(), overwrite=overwrite)
    assert _snapshot(user) == before


def test_extract_overwrite_refuses_a_user_folder(tmp_path, tiny_encoder, small_corpus):
    from probekit.errors import StoreError
    from probekit.store import extract

    user = tmp_path / "store"
    user.mkdir()
    before = _user_folder(user, {"store.json": "{\"mine\": 1}", "shards/a.npy": "data"})
    for overwrite in (False, True):
        with pytest.raises(StoreError, match="not written by probekit"):
            extract(tiny_encoder, small_corpus, user, overwrite=overwrite, progress=False)
    assert _snapshot(user) == before
    # the corpus's own folder (a probekit corpus) is an input: never an output, --overwrite or not
    corpus = _snapshot(small_corpus.root)
    with pytest.raises(StoreError, match="input of this command"):
        extract(tiny_encoder, small_corpus, small_corpus.root, overwrite=True, progress=False)
    assert _snapshot(small_corpus.root) == corpus


# -- 2. every file read back is checked against what wrote it ---------------------------------

def test_a_shard_that_lost_metadata_rows_is_refused(tmp_path, tiny_encoder, small_corpus):
    from probekit.errors import StoreError
    from probekit.store import EmbeddingStore, extract

    store = extract(tiny_encoder, small_corpus, tmp_path / "s", shard_size=5, batch_size=4,
                    progress=False)
    X, meta = store.read(1, "phone")
    assert len(X) == len(meta)
    csv = store.shard_paths()[0] / "phone.csv"
    df = pd.read_csv(csv)
    df.drop(index=df.index[3:8]).to_csv(csv, index=False)
    # issue 21: the size recorded at commit time refuses it on opening
    with pytest.raises(StoreError, match="phone.csv has .* bytes; extraction wrote"):
        EmbeddingStore.open(store.root)
    # a store written before sizes were recorded: the row counts still refuse it
    index = json.loads((store.root / "store.json").read_text())
    for shard in index["shards"]:
        shard.pop("files")
    (store.root / "store.json").write_text(json.dumps(index))
    with pytest.raises(StoreError, match="phone.csv has .* rows; the store wrote"):
        EmbeddingStore.open(store.root).read(1, "phone")


def _frame(tmp_path, **kw):
    from probekit.probes.results import ResultsTable

    return ResultsTable(_results(tmp_path, **kw)).load()


def test_analyze_refuses_rates_outside_0_1_mixed_stores_and_one_group(tmp_path, capsys):
    from probekit.bias.analysis import analyze
    from probekit.bias.errors import BiasInputError
    from probekit.probes.results import ResultsTable

    df = _frame(tmp_path)
    bad = df.copy()
    bad.loc[bad.index[0], "value"] = 1.5
    with pytest.raises(BiasInputError, match=r"outside \[0, 1\]"):
        analyze(bad, n_boot=10, n_perm=10)
    mixed = pd.concat([df, df.assign(store="another-store")], ignore_index=True)
    with pytest.raises(BiasInputError, match="from 2 embedding stores"):
        analyze(mixed, n_boot=10, n_perm=10)
    one = df[df["test_group"] == df["test_group"].iloc[0]]
    with pytest.raises(BiasInputError, match="only one accent group"):
        analyze(one, n_boot=10, n_perm=10)
    ResultsTable(tmp_path / "one").append(one)
    assert main(["analyze", str(tmp_path / "one"), "--out", str(tmp_path / "an"), *_AN]) == 2
    assert "at least two groups" in capsys.readouterr().err
    assert not (tmp_path / "an").exists()


def test_report_refuses_an_analysis_it_cannot_vouch_for(tmp_path, capsys):
    res = _results(tmp_path)
    an = tmp_path / "an"
    assert main(["analyze", str(res), "--out", str(an), *_AN]) == 0
    # a results folder instead of an analysis
    assert main(["report", str(res), "--out", str(tmp_path / "r1")]) == 2
    assert "is a results table, not an analysis folder" in capsys.readouterr().err
    # a truncated table, then a missing one: named
    table = an / "layer_curves.csv"
    text = table.read_text()
    table.write_text("\n".join(text.splitlines()[:-2]) + "\n")
    assert main(["report", str(an), "--out", str(tmp_path / "r2")]) == 2
    assert "layer_curves.csv has" in capsys.readouterr().err
    table.unlink()
    assert main(["report", str(an), "--out", str(tmp_path / "r3")]) == 2
    assert "layer_curves.csv is missing" in capsys.readouterr().err
    # an analysis killed mid-write (its stamp never marked complete)
    assert main(["analyze", str(res), "--out", str(an), *_AN]) == 0
    stamp = json.loads((an / OUTPUT_STAMP_NAME).read_text())
    stamp.pop("complete")
    (an / OUTPUT_STAMP_NAME).write_text(json.dumps(stamp))
    assert main(["report", str(an), "--out", str(tmp_path / "r4")]) == 2
    assert "not finished" in capsys.readouterr().err
    assert not any((tmp_path / f"r{i}").exists() for i in range(1, 5))


@pytest.mark.parametrize("content", [{"speakers": "spk07"}, {"speaker": ["spk07"]},
                                     {"speakers": ["spk07"], "sentence": []},
                                     {"speakers": [7]}, ["spk07"]])
def test_seen_ids_are_read_through_a_strict_schema(tmp_path, content, capsys):
    from probekit.corpus.seen import SEEN_FILE, SeenIds
    from probekit.errors import ProbekitError
    from probekit.probes.results import ResultsTable

    from tests.bias.test_compare import _table

    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / SEEN_FILE).write_text(json.dumps(content))
    with pytest.raises(ProbekitError, match=SEEN_FILE):
        SeenIds.load(tmp_path / "tuned")
    ResultsTable(tmp_path / "res").append(_table())
    assert main(["-q", "compare", str(tmp_path / "res"), "--before", "base",
                 "--seen", f"tuned={tmp_path / 'tuned'}"]) == 2
    assert SEEN_FILE in capsys.readouterr().err


# -- 3. values that cannot be right are refused where parsed -----------------------------------

@pytest.mark.parametrize("argv", [
    ["analyze", "r", "--out", "o", "--alpha", "1.5"],
    ["analyze", "r", "--out", "o", "--alpha", "0"],
    ["compare", "r", "--before", "b", "--alpha", "-0.1"],
    ["train", "--corpus", "c", "--out", "o", "--steps", "0"],
    ["train", "--corpus", "c", "--out", "o", "--steps", "-3"],
    ["train", "--corpus", "c", "--out", "o", "--test-speakers", "1.2"],
    ["report", "an", "--meta", "no/such/run.json"],
])
def test_impossible_values_are_refused_by_the_parser(argv, capsys):
    from probekit.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2 and argv[-1] in capsys.readouterr().err


@pytest.mark.parametrize("section, bad", [
    ("tasks.phone", {"test_speakers": 5}), ("analysis", {"alpha": 1.5}),
    ("analysis", {"n_boot": 0}), ("training", {"steps": 0}), ("training", {"test_speakers": 1.0}),
])
def test_study_config_refuses_impossible_values(section, bad):
    from probekit.study.config import StudyConfigError, config_from_dict

    d = {"corpus": {"synthetic": "small"}, "encoders": [{"name": "whisper-tiny.en"}]}
    node = d
    for part in section.split("."):
        node = node.setdefault(part, {})
    node.update(bad)
    key = next(iter(bad))
    with pytest.raises(StudyConfigError, match=f"{key} = "):
        config_from_dict(d)
