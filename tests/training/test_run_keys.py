"""Issue 20 (1, 2): a run is keyed by everything that determines its weights; a folder of
another run is never resumed or reused; accent-known evaluation survives reuse."""

import json

import pandas as pd
import pytest

from probekit.corpus.seen import SeenIds
from training.finetune import FinetuneError, finetune, finetune_splits
from training.trainer import TrainConfig

from .test_finetune import TINY_CORPUS, blocks_corpus  # noqa: F401  (fixture)


def _ids(c):
    return {u.id for u in c} if c is not None else set()


def _union(s):
    return _ids(s.train) | _ids(s.val) | _ids(s.test)


def _two_splits(corpus):
    """Two splits of the same utterances (every group trained) that put some ids on
    other sides."""
    a = finetune_splits(corpus, seed=0)
    for seed in range(1, 40):
        b = finetune_splits(corpus, seed=seed)
        if _union(b) == _union(a) and (_ids(a.train) - _ids(b.train)) & _ids(b.test):
            return a, b
    raise AssertionError("no second split")


def test_two_splits_of_the_same_utterances_get_different_keys(blocks_corpus):  # noqa: F811
    a, b = _two_splits(blocks_corpus)   # same utterances, some train ids now test ids
    assert a.key() != b.key()


def _cfg(out, **kw):
    return TrainConfig(out_dir=str(out), steps=kw.pop("steps", 1), batch_size=4, lr=1e-3,
                       cpu=True, progress=False, save_every=1, **kw)


def test_another_split_in_the_same_folder_trains_and_records_only_what_it_saw(
        tiny_whisper_dir, blocks_corpus, tmp_path):  # noqa: F811
    a, b = _two_splits(blocks_corpus)
    out = tmp_path / "run"
    ra = finetune(blocks_corpus, split=a, config=_cfg(out), model=str(tiny_whisper_dir),
                  evaluate=False, progress=False)
    rb = finetune(blocks_corpus, split=b, config=_cfg(out), model=str(tiny_whisper_dir),
                  evaluate=False, progress=False)
    assert not rb.reused and rb.out_dir != ra.out_dir
    rows = [json.loads(x) for x in (rb.out_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1]   # it trained
    for folder in (rb.adapters_dir, rb.merged_dir):
        assert SeenIds.load(folder).speakers == frozenset(b.seen().speakers)
    assert SeenIds.load(ra.merged_dir).speakers == frozenset(a.seen().speakers)
    # the same split again is reused from its own folder
    again = finetune(blocks_corpus, split=b, config=_cfg(out), model=str(tiny_whisper_dir),
                     evaluate=False, progress=False)
    assert again.reused and again.out_dir == rb.out_dir


def test_fewer_steps_than_a_checkpoint_are_refused_or_trained_afresh(
        tiny_whisper_dir, blocks_corpus, tmp_path):  # noqa: F811
    from training.adapters import inject_adapters, AdapterConfig
    from training.finetune import load_base
    from training.objectives import build_objective
    from training.trainer import Trainer, TrainingError

    sp = finetune_splits(blocks_corpus, train_groups=["es", "en-gb-scotland"], val_speakers=0)
    out = tmp_path / "steps"
    long = finetune(blocks_corpus, split=sp, config=_cfg(out, steps=2),
                    model=str(tiny_whisper_dir), evaluate=False, progress=False)
    short = finetune(blocks_corpus, split=sp, config=_cfg(out, steps=1),
                     model=str(tiny_whisper_dir), evaluate=False, progress=False)
    assert not short.reused and short.out_dir != long.out_dir
    assert json.loads((short.out_dir / "finetune.json").read_text())["settings"][
        "train_config"]["steps"] == 1
    # the Trainer itself refuses to hand back a longer run for a shorter one
    mdl, proc = load_base(str(tiny_whisper_dir))
    inject_adapters(mdl, AdapterConfig(), seed=0)
    tr = Trainer(mdl, proc, build_objective("erm"), sp.train, _cfg(long.out_dir, steps=1),
                 val=sp.val, identity={"base": long.info["base"], "run": long.info})
    with pytest.raises(TrainingError, match="past the 1 steps"):
        tr.fit()


def test_accent_known_evaluation_of_a_reused_mas_lora_run_equals_a_fresh_one(
        tiny_whisper_dir, blocks_corpus, tmp_path):  # noqa: F811
    from training.evaluate import transcribe
    from training.finetune import load_base

    sp = finetune_splits(blocks_corpus, train_groups=["es", "en-gb-scotland"], val_speakers=0)
    test = sp.test.filter(accent=["es", "en-gb-scotland"])
    test = test.filter(ids=[u.id for g in ("es", "en-gb-scotland")
                            for u in list(test.filter(accent=g))[:3]])
    kw = dict(split=sp, method="mas-lora", model=str(tiny_whisper_dir), evaluate=False,
              progress=False)
    cfg = TrainConfig(out_dir=str(tmp_path / "mas"), steps=3, batch_size=4, lr=0.05,
                      cpu=True, progress=False)
    fresh = finetune(blocks_corpus, config=cfg, **kw)
    known = lambda m: transcribe(m, fresh.processor, test, known_accent_d=1,  # noqa: E731
                                 max_new_tokens=6)["hyp"].tolist()
    want = known(fresh.model)
    uniform = transcribe(fresh.model, fresh.processor, test, max_new_tokens=6)["hyp"].tolist()
    assert want != uniform        # the test can tell the own expert from the mixture
    reused = finetune(blocks_corpus, config=cfg, **kw)
    assert reused.reused and reused.model.adapter_config.experts == fresh.model.adapter_config.experts
    assert known(reused.model) == want
    from training.evaluate import EvaluationError

    base, proc = load_base(str(tiny_whisper_dir))
    with pytest.raises(EvaluationError, match="no experts"):
        transcribe(base, proc, test, known_accent_d=1, max_new_tokens=2)


def test_a_changed_training_section_clears_the_studys_fine_tuning_runs(tmp_path, monkeypatch):
    from probekit.testing.demo_configs import finetune_demo_config
    from probekit.study.run import invalidate_changed

    old = finetune_demo_config(corpus=TINY_CORPUS, steps=2)
    train = tmp_path / "work" / "train"
    for run in ("zero-shot", "lora-erm"):
        (train / run).mkdir(parents=True)
    assert invalidate_changed(tmp_path, old.to_dict(), old)["stores_removed"] == []
    assert (train / "lora-erm").is_dir()          # nothing changed: kept
    new = finetune_demo_config(corpus=TINY_CORPUS, steps=3)
    assert "train" in invalidate_changed(tmp_path, old.to_dict(), new)["stores_removed"]
    assert not train.exists()


def test_an_empty_requested_validation_set_warns(blocks_corpus, caplog):  # noqa: F811
    import logging

    with caplog.at_level(logging.WARNING, logger="training.splits"):
        sp = finetune_splits(blocks_corpus, seed=0)
    assert sp.val is None and "validation set is empty" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="training.splits"):
        finetune_splits(blocks_corpus, seed=0, val_speakers=0)
    assert "validation set is empty" not in caplog.text
