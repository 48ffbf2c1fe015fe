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
