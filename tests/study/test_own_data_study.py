"""Issue 18 item 7 (study and CLI friction): paths relative to the TOML, poolings from the
tasks, --max-epochs, a reused store, a failed run's folder, compare --task, group:a*b from a
store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probekit.cli import main
from probekit.study import StudyConfigError, config_from_dict, load_config


def test_every_study_path_is_relative_to_the_toml(tmp_path, monkeypatch):
    sub = tmp_path / "project"
    (sub / "models" / "enc").mkdir(parents=True)
    (sub / "data").mkdir()
    (sub / "config.toml").write_text(
        '[corpus]\npath = "data/manifest.csv"\naudio_dir = "data/audio"\n'
        '[[encoders]]\nname = "models/enc"\nstore = "stores/enc"\n'
        '[[encoders]]\nname = "whisper-tiny.en"\n')
    monkeypatch.chdir(tmp_path)  # the working directory is not the TOML's
    cfg = load_config("project/config.toml")
    assert cfg.corpus["path"] == str((sub / "data" / "manifest.csv").resolve())
    assert cfg.corpus["audio_dir"] == str((sub / "data" / "audio").resolve())
    assert cfg.encoders[0].name == str((sub / "models" / "enc").resolve())
    assert cfg.encoders[0].store == str((sub / "stores" / "enc").resolve())
    assert cfg.encoders[1].name == "whisper-tiny.en"  # a registered name stays a name


@pytest.mark.parametrize("tasks, poolings", [
    ({"speaker": {}}, ("utterance",)),
    ({"phone": {}}, ("phone",)),
    ({"group:accent": {}, "asr": {}}, ("utterance", "frames")),
])
def test_poolings_follow_the_tasks(tasks, poolings):
    assert config_from_dict({"encoders": ["a"], "tasks": tasks}).poolings == poolings
    explicit = config_from_dict({"encoders": ["a"], "tasks": tasks, "poolings": ["phone"]})
    assert explicit.poolings == ("phone",)


def test_max_epochs_one_meaning_from_cli_and_study(tmp_path, monkeypatch):
    with pytest.raises(StudyConfigError, match="max_epochs.*tasks.asr"):
        config_from_dict({"encoders": ["a"], "tasks": {"phone": {"max_epochs": 5}}})
    from probekit.probes.grid import GridError, run_grid

    from tests.probes.test_grid import FakeStore, _meta
    with pytest.raises(GridError, match="CTC probe"):
        run_grid(FakeStore(_meta()), "phone", tmp_path / "r", max_epochs=3, progress=False)
    seen = {}

    def fake_run_grid(store, task, out, **kw):
        seen.update(kw)
        import pandas as pd
        return pd.DataFrame()

    monkeypatch.setattr("probekit.probes.grid.run_grid", fake_run_grid)
    monkeypatch.setattr("probekit.store.EmbeddingStore.open", lambda p: object())
    monkeypatch.setattr("probekit.corpus.readers.read_corpus", lambda p: None)
    assert main(["probe", "--store", "s", "--task", "asr", "--corpus", "c", "--out",
                 str(tmp_path / "r"), "--max-epochs", "7"]) == 0
    assert seen["max_epochs"] == 7


def test_failed_run_does_not_claim_its_folder(tmp_path):
    from probekit.study.run import StudyError, prepare_output

    a = config_from_dict({"encoders": ["a"], "corpus": {"path": "x.csv"}})
    b = config_from_dict({"encoders": ["a"], "corpus": {"path": "y.csv"}})
    out = tmp_path / "run"
    assert prepare_output(out, a, False) is False
    # a failed, unfinished, run of a: another config may use the folder
    assert prepare_output(out, b, False) is False
    assert json.loads((out / "study.json").read_text())["fingerprint"] == b.fingerprint()
    (out / "run.json").write_text("{}")  # b finished: now the folder is b's
    with pytest.raises(StudyError, match="--overwrite"):
        prepare_output(out, a, False)


def test_reused_store_is_fingerprint_checked():
    from probekit.errors import ProbekitError
    from probekit.store.store import corpus_hash
    from probekit.study.stores import check_reused_store

    from probekit.corpus.model import AudioSource, Corpus, Utterance
    corpus = Corpus([Utterance(id=f"u{i}", audio=AudioSource(path=f"{i}.wav"), speaker="s",
                               text="hi") for i in range(3)])

    class Enc:
        name, fingerprint, layer_names = "enc", "w1", ["conv", "block1"]

    class Store:
        root, layers, poolings = "st", ["conv", "block1"], ["utterance", "phone"]
        fingerprint = {"encoder": "enc", "encoder_weights": "w1", "corpus": corpus_hash(corpus),
                       "utterances": 3}

    check_reused_store(Store, Enc, corpus, ("phone",), (0, 1))
    with pytest.raises(ProbekitError, match="lacks pooling.*frames"):
        check_reused_store(Store, Enc, corpus, ("phone", "frames"))
    with pytest.raises(ProbekitError, match="lacks layer.*block2"):
        check_reused_store(Store, Enc, corpus, ("phone",), ("block2",))
    Enc.fingerprint = "w2"
    with pytest.raises(ProbekitError, match="not computed by encoder 'enc'"):
        check_reused_store(Store, Enc, corpus, ("phone",))
    Enc.fingerprint = "w1"
    with pytest.raises(ProbekitError, match="another corpus"):
        check_reused_store(Store, Enc, corpus[:2], ("phone",))


def test_compare_task_filter(tmp_path, capsys):
    from probekit.probes.grid import run_grid

    from tests.probes.test_grid import FakeStore, _meta
    st = FakeStore(_meta(speakers=4))
    res = tmp_path / "res"
    for enc, seeds in (("base", (0, 1)), ("after", (0, 1))):
        run_grid(st, "phone", res, seeds=seeds, encoder=enc, progress=False, train_sets=("all",))
    # another task whose seeds differ between the encoders
    run_grid(st, "group:accent", res, seeds=(0, 1), encoder="base", progress=False)
    run_grid(st, "group:accent", res, seeds=(2,), encoder="after", progress=False)
    args = ["compare", str(res), "--before", "base", "--after", "after"]
    assert main(args + ["--task", "phone"]) == 0
    assert "phone" in capsys.readouterr().out
    assert main(args + ["--task", "pitch"]) == 2
    assert "its tasks: group:accent, phone" in capsys.readouterr().err


def test_intersectional_task_from_a_store():
    import pandas as pd

    from probekit.store.store import EmbeddingStore

    meta = pd.DataFrame({"speaker": [f"s{i}" for i in range(16)],
                         "group:accent": ["a", "b"] * 8,
                         "group:gender": ["f"] * 8 + ["m"] * 8})

    class S(EmbeddingStore):
        def read(self, layer, pooling):
            return np.zeros((len(meta), 2)), meta.copy()

    from pathlib import Path
    X, y, m = S(Path("st"), {"attributes": ["accent", "gender"]}).load_task(0, "group:accent*gender")
    assert sorted(set(y)) == ["a*f", "a*m", "b*f", "b*m"] and len(X) == 16


def test_an_analysis_by_older_statistics_is_not_reused(tmp_path):
    """A study reruns an analysis whose marker names other statistics (or none: an older
    probekit), so new prose never describes tables computed by another rule."""
    import json

    from probekit.study.config import load_config
    from probekit.study.run import ANALYSIS_METHOD, _analysis_done

    config = load_config("studies/layerwise_bias/config.toml")
    (tmp_path / "findings.md").write_text("x\n")
    marker = {"n_rows": 5, "fingerprint": config.fingerprint()}
    (tmp_path / "analysis.json").write_text(json.dumps(marker))
    assert not _analysis_done(tmp_path, 5, config)
    (tmp_path / "analysis.json").write_text(json.dumps({**marker, "method": ANALYSIS_METHOD}))
    assert _analysis_done(tmp_path, 5, config)
