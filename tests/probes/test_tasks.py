"""Tasks as types (issue 22 item 3/4): the task registry's contract (one grid cell per task on
the tiny store), the one task parser, TrainSet, encoder layer indices, registered probe names."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from probekit.probes.grid import make_probe, run_grid
from probekit.probes.results import ResultsTable
from probekit.probes.splits import SplitError, TrainSet, equal_training_sets
from probekit.probes.tasks import TASKS, Task, get_task, group_attribute_of, register_task
from probekit.registry import RegistryError


def _example(kind: str) -> Task:
    """A task of each registered kind (a parametrised kind gets the tiny corpus's attribute)."""
    return get_task(f"{kind}:accent" if TASKS[kind].takes_argument else kind)


@pytest.mark.parametrize("kind", TASKS.names())
def test_every_registered_task_runs_one_grid_cell_on_the_tiny_store(kind, tiny_store,
                                                                    tiny_frames_store, tmp_path):
    task = _example(kind)
    assert get_task(task.name) == task and get_task(task) is task  # the parser round-trips
    assert task.words and task.probe_words("p").endswith("(p)")
    store, corpus = ((tiny_store, None) if task.pooling in tiny_store.poolings
                     else tiny_frames_store)
    assert task.pooling in store.poolings
    layer = store.layers[-1]
    df = run_grid(store, task.name, tmp_path / "r", layers=[layer], seeds=(0,),
                  train_sets=("all",), corpus=corpus if task.needs_corpus else None,
                  progress=False, **({"max_epochs": 1} if task.sequences else {}))
    assert len(df.drop_duplicates(["layer", "train_set", "seed", "probe"])) == 1  # one cell
    assert set(df["task"]) == {task.name}
    assert set(df["probe"]) == {task.default_probes[0]}
    assert set(df["metric"]) <= set(task.metrics) and task.report_metric(df["metric"]) is not None
    assert set(df["layer_index"]) == {store.index["encoder_layer_names"].index(layer)}
    assert (df["value"] >= 0).all() and (df["n"] > 0).all()  # CER/WER can pass 1 (insertions)
    assert df.loc[df["metric"] == "error", "value"].le(1).all()
    assert "all" in set(df["unit"]) and (df["unit"] != "all").any()  # per speaker and per group


def test_a_taken_task_name_raises_and_the_same_class_again_is_allowed():
    assert register_task(TASKS["phone"]) is TASKS["phone"]

    class Other(Task):
        kind = "phone"

    with pytest.raises(RegistryError, match="'phone' is taken"):
        register_task(Other)
    assert TASKS["phone"] is not Other


@pytest.mark.parametrize("name, match", [("words", "unknown task 'words'; tasks: "),
                                         ("phone:x", "takes no argument"),
                                         ("group:", "needs an argument"), ("", "non-empty")])
def test_get_task_is_the_one_parser_and_refuses_bad_names(name, match):
    with pytest.raises(RegistryError, match=match):
        get_task(name)


def test_group_task_names_its_attribute_column_and_words():
    t = get_task("group:accent*gender")
    assert (t.attribute, t.column, t.words) == ("accent*gender", "group:accent*gender",
                                                "accent*gender identification")
    assert get_task("phone").attribute is None and not get_task("speaker").content
    assert group_attribute_of("group:accent") == "accent" and group_attribute_of("speaker") is None


@pytest.mark.parametrize("name, ts", [("es", TrainSet("single", "es")), ("all", TrainSet("all")),
                                      ("all-matched", TrainSet("all-matched")),
                                      ("all-but:es", TrainSet("all-but", "es"))])
def test_trainset_parses_and_prints_every_kind(name, ts):
    assert TrainSet.parse(name) == ts and str(ts) == name
    assert ts.pooled == (ts.kind != "single")


def test_trainset_and_training_sets_refuse_unknown_kinds():
    with pytest.raises(SplitError, match="unknown training-set kind"):
        TrainSet("most")
    with pytest.raises(SplitError, match="needs a group"):
        TrainSet("all-but")
    meta = pd.DataFrame({"speaker": list("aabbccdd"), "group:accent": list("xxxxyyyy")})
    with pytest.raises(SplitError, match=r"unknown training-set kind\(s\) \['al'\]"):
        equal_training_sets(meta, np.arange(8), "group:accent", 0, ("single", "al"))


@pytest.fixture(scope="module")
def subset_store(tmp_path_factory):
    """A store of encoder layers 0 and 2 only (as ``probekit extract --layers 0,2``)."""
    from probekit.corpus.synthetic import build_synthetic_corpus
    from probekit.encoders import load_encoder
    from probekit.store import extract
    from probekit.testing.tiny_models import save_tiny_ssl

    corpus = build_synthetic_corpus("small", tmp_path_factory.mktemp("lc") / "small", progress=False)
    enc = load_encoder(str(save_tiny_ssl("wav2vec2", tmp_path_factory.mktemp("lm") / "m")), device="cpu")
    return extract(enc, corpus, tmp_path_factory.mktemp("ls") / "s", layers=[0, 2],
                   poolings=("utterance",), progress=False)


def test_layer_index_is_the_encoder_layer_index_and_old_parts_are_retired(subset_store, tmp_path,
                                                                          caplog):
    store = subset_store
    names = store.index["encoder_layer_names"]
    assert store.layers == [names[0], names[2]]
    table = ResultsTable(tmp_path / "r")
    df = run_grid(store, "group:accent", table, seeds=(0,), progress=False)
    assert sorted(set(df["layer_index"])) == [0, 2]
    assert dict(zip(df["layer"], df["layer_index"])) == {names[0]: 0, names[2]: 2}
    # a part written when layer_index was the position among the stored layers (0, 1)
    old = table.parts()[0]
    part = pd.concat([pd.read_csv(p, keep_default_na=False, dtype=str) for p in table.parts()])
    part["layer_index"] = part["layer"].map({names[0]: "0", names[2]: "1"})
    for p in table.parts():
        p.unlink()
    part.to_csv(old, index=False)
    assert set(ResultsTable(table.root).load()["layer_index"]) == {0, 1}
    with caplog.at_level(logging.WARNING, logger="probekit.probes.results"):
        again = run_grid(store, "group:accent", table, seeds=(0,), progress=False)
    assert old.name in caplog.text and "position among the stored layers" in caplog.text
    assert (table.root / "superseded" / old.name).exists()
    assert sorted(set(again["layer_index"])) == [0, 2]
    pd.testing.assert_frame_equal(again.reset_index(drop=True), df.reset_index(drop=True))


def test_make_probe_params_keep_the_registered_name_in_the_probe_column(tiny_store, tmp_path):
    ctc = make_probe("ctc", max_epochs=15)
    assert ctc.max_epochs == 15
    lda = make_probe("lda", seed=3, shrinkage=None)
    df = run_grid(tiny_store, "group:accent", tmp_path / "r", probes=[lda],
                  layers=[tiny_store.layers[-1]], seeds=(0,), progress=False)
    assert set(df["probe"]) == {"lda"}


def test_probe_cli_refuses_an_unknown_task_before_reading_anything(tmp_path, capsys):
    from probekit.cli import main

    assert main(["probe", "--store", str(tmp_path / "none"), "--task", "phone,words",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'words'; tasks: asr, group:<attribute>, phone, speaker" in err
    assert not (tmp_path / "r").exists()
