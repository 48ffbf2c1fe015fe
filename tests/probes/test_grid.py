"""Splits (leakage guard, equal sizes) and the probe grid (schema, resume, unseen classes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probekit.probes.grid import GridError, run_grid
from probekit.probes.results import CELL_KEYS, TABLE_COLUMNS, ResultsTable
from probekit.probes.splits import (Split, SplitError, check_leakage, content_split,
                                    equal_training_sets, speaker_id_split)

PHONES = list("abcdefgh")


def _meta(groups=("g1", "g2", "g3"), speakers=4, sentences=6, phones_per_utt=8, seed=0):
    """Phone-level metadata: every speaker reads every sentence (sentences repeat)."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in groups:
        for s in range(speakers):
            spk = f"{g}_s{s}"
            for k in range(sentences):
                for p in range(phones_per_utt):
                    rows.append({"utt_id": f"{spk}_u{k}", "speaker": spk, "sentence_id": f"S{k}",
                                 "group:accent": g, "phone": PHONES[(k + p) % len(PHONES)]})
    meta = pd.DataFrame(rows).sample(frac=1.0, random_state=seed)  # row order must not matter
    meta = meta.reset_index(drop=True)
    meta["row"] = np.arange(len(meta))
    return meta


class FakeStore:
    """In-memory stand-in for EmbeddingStore with planted structure.

    Phone p has a prototype vector; group ``noisy_group`` gets much larger noise, so its
    phones are harder to classify.
    """

    def __init__(self, meta, noisy_group="g3", layers=("conv", "block1"), seed=0, utt_level=False):
        rng = np.random.default_rng(seed)
        self.meta = meta.reset_index(drop=True)
        self.layers = list(layers)
        self.index = {"attributes": ["accent"]}
        self.fingerprint = {"encoder": "fake"}
        protos = {p: rng.normal(0, 3, 16) for p in PHONES}
        self.X = {}
        for li, layer in enumerate(self.layers):
            noise = np.where(self.meta["group:accent"] == noisy_group, 4.0, 0.5)[:, None]
            base = np.stack([protos[p] for p in self.meta["phone"]])
            self.X[layer] = (base + noise * rng.normal(size=base.shape) * (1 + li)).astype(np.float16)
        self.loads: list[str] = []

    def layer_name(self, layer):
        return self.layers[layer] if isinstance(layer, int) else layer

    def load_task(self, layer, task, lazy=False):
        from probekit.store.rows import ArrayRows

        self.loads.append(layer)
        y = {"phone": self.meta["phone"], "speaker": self.meta["speaker"],
             "group:accent": self.meta["group:accent"]}[task]
        return ArrayRows(self.X[layer]) if lazy else self.X[layer], y.to_numpy(), self.meta


def test_content_split_is_speaker_and_sentence_disjoint_with_every_group_on_both_sides():
    meta = _meta()
    for seed in range(5):
        sp = content_split(meta, "group:accent", seed)
        tr, te = meta.iloc[sp.train], meta.iloc[sp.test]
        assert sp.speakers_disjoint and sp.sentences_disjoint
        assert not set(tr.speaker) & set(te.speaker)
        assert not set(tr.sentence_id) & set(te.sentence_id)
        assert set(tr["group:accent"]) == set(te["group:accent"]) == {"g1", "g2", "g3"}
    # seeds resample the split
    assert not np.array_equal(content_split(meta, "group:accent", 0).test,
                              content_split(meta, "group:accent", 1).test)


def test_leaky_splits_are_refused():
    meta = _meta()
    sp = content_split(meta, "group:accent", 0)
    spk, utt = meta["speaker"].iloc[sp.test[0]], meta["utt_id"].iloc[sp.test[0]]
    moved = np.flatnonzero((meta["utt_id"] == utt).to_numpy())
    # one of a test speaker's utterances moved into training -> refused, naming the speaker
    with pytest.raises(SplitError, match=f"speaker '{spk}'"):
        check_leakage(meta, Split(np.union1d(sp.train, moved), np.setdiff1d(sp.test, moved),
                                  True, False))
    # the same split is fine when it does not promise speaker-disjointness (SID)
    check_leakage(meta, Split(np.union1d(sp.train, moved), np.setdiff1d(sp.test, moved), False, False))
    # a sentence on both sides of a sentence-disjoint split -> refused
    s = meta["sentence_id"].iloc[sp.test[0]]
    other = np.flatnonzero(((meta["sentence_id"] == s) & ~meta["speaker"].isin(
        meta["speaker"].iloc[sp.test])).to_numpy())
    with pytest.raises(SplitError, match="sentence"):
        check_leakage(meta, Split(np.union1d(sp.train, other[:1]), sp.test, True, True))


def test_group_with_one_speaker_is_named():
    meta = _meta()
    meta = meta[~meta.speaker.isin(["g2_s1", "g2_s2", "g2_s3"])]
    with pytest.raises(SplitError, match="group 'g2' has 1 speaker"):
        content_split(meta, "group:accent", 0)


def test_speaker_id_split_keeps_speakers_and_separates_utterances():
    meta = _meta().drop_duplicates("utt_id").reset_index(drop=True)
    sp = speaker_id_split(meta, 0)
    tr, te = meta.iloc[sp.train], meta.iloc[sp.test]
    assert set(tr.speaker) == set(te.speaker) == set(meta.speaker)
    assert not set(tr.utt_id) & set(te.utt_id)
    assert sp.sentences_disjoint and not set(tr.sentence_id) & set(te.sentence_id)


def test_training_sets_have_equal_sizes():
    meta = _meta(speakers=5)
    # make g1 much bigger in data: equal-size subsampling must undo that
    meta = pd.concat([meta, meta[meta["group:accent"] == "g1"].assign(
        utt_id=lambda d: d.utt_id + "x")], ignore_index=True)
    sp = content_split(meta, "group:accent", 0)
    sets = equal_training_sets(meta, sp.train, "group:accent", 0)
    names = [s.name for s in sets]
    assert names == ["g1", "g2", "g3", "all", "all-but:g1", "all-but:g2", "all-but:g3"]
    assert len({len(s.rows) for s in sets}) == 1
    singles = [s for s in sets if s.name in ("g1", "g2", "g3")]
    assert len({s.n_speakers for s in singles}) == 1
    for s in sets:
        assert set(s.rows) <= set(sp.train)
        assert len(set(s.rows)) == len(s.rows)
    pooled = next(s for s in sets if s.name == "all")
    counts = meta.iloc[pooled.rows]["group:accent"].value_counts()
    assert counts.max() - counts.min() <= 1  # even share per group


def test_grid_schema_resume_and_planted_difficulty(tmp_path):
    store = FakeStore(_meta())
    df = run_grid(store, "phone", tmp_path / "res", seeds=(0, 1), progress=False)
    assert list(df.columns) == TABLE_COLUMNS
    # every cell evaluated on every test group, per speaker and overall
    cells = df[CELL_KEYS].drop_duplicates()
    assert len(cells) == 2 * 2 * 8  # layers x seeds x training sets (3 single, all, all-matched, 3 all-but)
    per_cell = df[df.unit == "all"].groupby(CELL_KEYS).test_group.nunique()
    assert (per_cell == 3).all()
    # per-speaker rows pool exactly to the group rows
    spk = df[df.unit != "all"].assign(err=lambda d: d.value * d.n)
    pooled = spk.groupby(CELL_KEYS + ["test_group"]).apply(lambda d: d.err.sum() / d.n.sum())
    overall = df[df.unit == "all"].set_index(CELL_KEYS + ["test_group"]).value
    assert np.allclose(pooled.sort_index().to_numpy(), overall.sort_index().to_numpy())
    # the noisy group is harder for the broadly trained probe
    all_tr = df[(df.unit == "all") & (df.train_set == "all")].groupby("test_group").value.mean()
    assert all_tr["g3"] > all_tr["g1"] + 0.1 and all_tr["g3"] > all_tr["g2"] + 0.1
    # resume: a second run computes nothing and loads no embeddings
    store.loads.clear()
    again = run_grid(store, "phone", tmp_path / "res", seeds=(0, 1), progress=False)
    assert again.empty and store.loads == [store.layers[0]]  # metadata only
    # an interrupted run: drop one part, only its cells are recomputed
    table = ResultsTable(tmp_path / "res")
    lost = table.parts()[0]
    lost_cells = pd.read_csv(lost)[CELL_KEYS].drop_duplicates()
    lost.unlink()
    redo = run_grid(store, "phone", tmp_path / "res", seeds=(0, 1), progress=False)
    assert len(redo[CELL_KEYS].drop_duplicates()) == len(lost_cells)
    assert len(table.load()) == len(df)


def test_labels_not_seen_by_every_training_set_are_not_scored(tmp_path, caplog):
    """A phone label that one group alone uses (here: every training-side 'a' of g1 is 'q',
    so only the g1 and pooled probes see 'q') is left out of every probe's score, so it can
    never count as bias; a label no training set saw ('z' on the test side) likewise, and
    the grid logs it."""
    meta = _meta()
    sp = content_split(meta, "group:accent", 0)
    is_a = (meta["phone"] == "a").to_numpy()
    in_test = np.zeros(len(meta), bool)
    in_test[sp.test] = True
    g1 = (meta["group:accent"] == "g1").to_numpy()
    labels = meta["phone"].copy()
    labels[is_a & ~in_test & g1] = "q"        # training side: only g1 says 'q'
    labels[is_a & in_test & g1] = "q"         # test side: g1's 'a' tokens are 'q' too
    labels[is_a & in_test & ~g1] = "z"        # test side: nobody trained on 'z'
    store = FakeStore(meta)
    store.meta["phone"] = labels.reset_index(drop=True)
    with caplog.at_level("WARNING"):
        df = run_grid(store, "phone", tmp_path / "r", seeds=(0,), probes=("lda",), progress=False)
    test_meta = store.meta.iloc[sp.test]
    scored = test_meta[~test_meta["phone"].isin(["q", "z"])].groupby("group:accent").size()
    for ts in ("all", "g1", "g2"):
        rows = df[(df.unit == "all") & (df.train_set == ts) & (df.layer == "conv")]
        assert (rows.n.to_numpy() == scored.reindex(rows.test_group).to_numpy()).all(), ts
    assert "not scored" in caplog.text and "q" in caplog.text and "z" in caplog.text


def test_sid_and_group_id_train_on_all(tmp_path):
    meta = _meta().drop_duplicates("utt_id").reset_index(drop=True)
    store = FakeStore(meta)
    for task in ("speaker", "group:accent"):
        df = run_grid(store, task, tmp_path / task, seeds=(0,), progress=False)
        assert set(df.train_set) == {"all"}
        assert set(df.test_group) == {"g1", "g2", "g3"}


def test_bad_configuration_is_named(tmp_path):
    store = FakeStore(_meta())
    with pytest.raises(GridError, match="no group attribute 'dialect'"):
        run_grid(store, "phone", tmp_path / "r", group_attribute="dialect", progress=False)
    with pytest.raises(GridError, match="unknown probe 'svm'"):
        run_grid(store, "phone", tmp_path / "r", probes=("svm",), progress=False)


def test_sklearn_estimator_drops_in(tmp_path):
    from sklearn.linear_model import LogisticRegression

    store = FakeStore(_meta(), layers=("conv",))
    df = run_grid(store, "phone", tmp_path / "r", seeds=(0,), train_sets=("all",),
                  probes=(LogisticRegression(max_iter=200),), progress=False)
    assert set(df.probe) == {"LogisticRegression"}
    assert df[df.unit == "all"].value.mean() < 0.5


def test_grid_on_a_real_store(tmp_path, tiny_store):
    df = run_grid(tiny_store, "phone", tmp_path / "r", seeds=(0,), train_sets=("single", "all"),
                  progress=False)
    assert set(df.layer) == set(tiny_store.layers)
    assert set(df.test_group) == set(tiny_store.read(0, "utterance")[1]["group:accent"])
    assert ((df.value >= 0) & (df.value <= 1)).all()


def test_cli_probe_runs_and_resumes(tmp_path, tiny_store, capsys):
    from probekit.cli import main

    args = ["-q", "probe", "--store", str(tiny_store.root), "--task", "phone,group:accent",
            "--out", str(tmp_path / "r"), "--seeds", "0", "--layers", "0,block1"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "phone:" in first and "new cell" in first
    assert main(args) == 0
    assert "phone: 0 new cell(s)" in capsys.readouterr().out
    df = ResultsTable(tmp_path / "r").load()
    assert set(df.layer) == {"conv", "block1"} and set(df.task) == {"phone", "group:accent"}
    assert main(["probe", "--store", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2


def test_asr_task_writes_cer_and_wer_per_speaker(tmp_path, tiny_frames_store):
    store, corpus = tiny_frames_store
    with pytest.raises(GridError, match="needs the corpus"):
        run_grid(store, "asr", tmp_path / "r", progress=False)
    with pytest.raises(GridError, match="sequence probes"):
        run_grid(store, "asr", tmp_path / "r", probes=("lda",), corpus=corpus, progress=False)
    df = run_grid(store, "asr", tmp_path / "r", corpus=corpus, seeds=(0,), layers=["conv"],
                  progress=False)
    assert set(df.metric) == {"cer", "wer"} and set(df.probe) == {"ctc"}
    assert set(df.train_set) == {"all"}
    # per-speaker rows pool exactly into the group rows (value * n is an error count)
    for metric in ("cer", "wer"):
        d = df[df.metric == metric]
        spk = d[d.unit != "all"].assign(e=lambda x: x.value * x.n).groupby("test_group")[["e", "n"]].sum()
        grp = d[d.unit == "all"].set_index("test_group")
        np.testing.assert_allclose((spk.e / spk.n).sort_index(), grp.value.sort_index())
        np.testing.assert_array_equal(spk.n.sort_index(), grp.n.sort_index())
    # references: every test utterance's characters are counted once
    n_chars = df[(df.metric == "cer") & (df.unit == "all")].n.sum()
    assert n_chars > 0


def test_phone_task_refuses_a_store_without_phones(tmp_path, tiny_frames_store):
    store, _ = tiny_frames_store
    from probekit.errors import StoreError

    with pytest.raises((StoreError, GridError), match="phone"):
        run_grid(store, "phone", tmp_path / "r", progress=False)
