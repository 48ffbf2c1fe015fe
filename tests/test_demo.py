"""The demo pipeline end to end at test size (tiny random Whisper, 36 synthetic utterances):
report files, banners, real numbers from the analysis tables, reuse and refusal."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from probekit.cli import main
from probekit.demo import DEMO_CONFIG, demo_config, run_demo
from probekit.testing.demo_configs import tiny_demo_config
from probekit.study import StudyError


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from probekit.testing.tiny_models import save_tiny_whisper

    model = save_tiny_whisper(tmp_path_factory.mktemp("model") / "tiny-whisper")
    cfg = tiny_demo_config(model)
    out = tmp_path_factory.mktemp("demo") / "probekit-demo"
    return cfg, run_demo(out, config=cfg, progress=False)


def test_report_files_banners_and_real_numbers(demo_run):
    _, run = demo_run
    html, md = run.report_html.read_text(), run.report_md.read_text()
    for text in (html, md):
        assert "SYNTHETIC DATA" in text and "RANDOMLY INITIALISED MODEL" in text
        assert "tiny-random-whisper" in text
    # the summary comes first, then figures, then configuration
    assert md.index("## Summary") < md.index("## Figures") < md.index("## Configuration")
    # numbers in the report are the analysis table's: every task's overall error per layer
    curves = pd.read_csv(run.analysis / "layer_curves.csv")
    ov = curves[curves["statistic"] == "overall"]
    assert set(ov["task"]) == {"phone", "speaker", "group:accent", "asr"}
    for r in ov[ov["metric"] != "wer"].itertuples():
        assert f"{r.estimate:.3f}" in md, (r.task, r.layer)
    best = ov[ov["task"] == "phone"].sort_values("estimate").iloc[0]
    assert re.search(rf"phone recognition.*lowest at {best.layer} \({best.estimate:.3f}\)", md)
    # figures embedded in the HTML, linked in the markdown
    n_png = len([f for f in (run.analysis / "figures").glob("*.png") if "_wer_" not in f.name])
    assert n_png >= 4
    assert html.count('src="data:image/png;base64,') == n_png + 1  # + the at-a-glance figure
    assert md.count("](analysis/figures/") == n_png
    assert (run.out / "report_figures" / "at_a_glance.svg").exists()
    meta = json.loads((run.out / "run.json").read_text())
    assert meta["versions"]["probekit"] and meta["fingerprints"]["corpus"]
    assert meta["versions"]["probekit"] in md


def test_second_run_reuses_everything(demo_run):
    cfg, run = demo_run
    stamp = (run.analysis / "analysis.json").stat().st_mtime_ns
    parts = sorted(p.name for p in (run.out / "work" / "results").glob("part-*.csv"))
    again = run_demo(run.out, config=cfg, progress=False)
    assert again.reused
    assert (run.analysis / "analysis.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (run.out / "work" / "results").glob("part-*.csv")) == parts


def test_different_config_is_refused_not_overwritten(demo_run):
    _, run = demo_run
    with pytest.raises(StudyError, match="different run.*--overwrite"):
        run_demo(run.out, config=demo_config(), progress=False)
    assert main(["-q", "demo", "--out", str(run.out)]) == 2


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):  # --overwrite never deletes a folder probekit did not write
        with pytest.raises(StudyError, match="not written by probekit"):
            run_demo(tmp_path, config=demo_config(), progress=False, overwrite=overwrite)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_default_demo_never_uses_a_hub():
    cfg = demo_config()
    assert all("hub" not in e.sources for e in cfg.encoders)
    assert cfg.synthetic and DEMO_CONFIG["corpus"]["synthetic"] == "default"
    assert {t.task for t in cfg.tasks} == {"phone", "speaker", "group:accent", "asr"}
