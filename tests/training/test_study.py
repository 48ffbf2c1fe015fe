"""The finetune_bias study's tiny preset end to end.

On the suite's tiny random Whisper (4 s window) so it costs seconds; the same preset with
whisper-tiny.en (its configured model) is run by
``python -m studies.finetune_bias.study --preset tiny``.
"""

import pandas as pd

from studies.finetune_bias.study import DISCLAIMER, METHODS, load_config, run


def test_tiny_preset_runs_end_to_end(tiny_whisper_dir, small_corpus, tmp_path):
    cfg = load_config("tiny", model=str(tiny_whisper_dir), progress=False, max_new_tokens=8)
    assert cfg["corpus"] == "small" and cfg["model"] != "whisper-tiny.en"
    res = run(cfg, tmp_path)
    table = res["wer_table"]
    assert list(table.index) == [*METHODS, "mas-lora (accent known, d=2)"]
    for col in ("en-gb-scotland", "es", "macro (trained)", "gap (trained)", "native en-us"):
        assert table[col].notna().all(), col
    assert (table["macro (trained)"] == table[["en-gb-scotland", "es"]].mean(axis=1)).all()
    for (task, stat), t in res["layer_tables"].items():
        assert list(t.index) == list(METHODS)
        assert len(t.columns) == 3  # conv + 2 blocks
    report = (tmp_path / "report.md").read_text()
    assert DISCLAIMER in report and "forgetting" in report
    assert pd.read_csv(tmp_path / "wer_table.csv").shape[0] == len(table)
    # a rerun reuses the finished runs (no retraining)
    mtime = (tmp_path / "erm-lora" / "final" / "adapter_model.safetensors").stat().st_mtime
    run(cfg, tmp_path)
    assert (tmp_path / "erm-lora" / "final" / "adapter_model.safetensors").stat().st_mtime == mtime


def test_a_changed_setting_clears_the_cached_run(tmp_path):
    """Review defect 13: ``--set steps=100`` must retrain, not report the old run."""
    from studies.finetune_bias.study import _reset_if_config_changed

    mdir = tmp_path / "erm-lora"
    cfg = load_config("tiny")
    _reset_if_config_changed(mdir, cfg)
    (mdir / "transcripts.csv").write_text("x")
    _reset_if_config_changed(mdir, {**cfg, "progress": False})  # not a run setting: kept
    assert (mdir / "transcripts.csv").exists()
    _reset_if_config_changed(mdir, {**cfg, "steps": cfg["steps"] + 1})
    assert not (mdir / "transcripts.csv").exists()


def test_validation_is_sentence_disjoint_from_training(small_corpus):
    """Review defect 6: the study's validation sentences were all read by training speakers."""
    import dataclasses

    from probekit.corpus.model import Corpus
    from studies.finetune_bias.study import make_splits

    # two pseudo-speakers per speaker, so there are validation speakers to spare
    corpus = Corpus([dataclasses.replace(u, speaker=f"{u.speaker}-{i % 2}")
                     for i, u in enumerate(small_corpus)], root=small_corpus.root)
    train, val, test = make_splits(corpus, {**load_config("tiny"), "val_per_group": 1})
    assert len(val) and len(train)
    assert not {u.sentence_id for u in train} & {u.sentence_id for u in val}
    assert not set(train.speakers) & set(val.speakers)
