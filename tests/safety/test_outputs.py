"""Issue 15: outputs are never stale and never destroyed.

A stale store, a foreign folder under --overwrite, leftover figures, a different report, and a
study whose config changed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probekit.cli import main
from probekit.outdir import OUTPUT_STAMP_NAME, OutputFolderError, claim_output, read_stamp, remove_output
from probekit.probes.grid import GridError, run_grid
from probekit.probes.results import ResultsTable

from tests.probes.test_grid import FakeStore, _meta


def _store(tag: str, meta=None, attributes=("accent",)):
    s = FakeStore(_meta() if meta is None else meta)
    s.fingerprint = {"encoder": "fake", "corpus": tag}
    s.index = {"attributes": list(attributes)}
    return s


def test_results_cells_are_keyed_by_store_fingerprint(tmp_path):
    res = tmp_path / "res"
    a, b = _store("corpus-A"), _store("corpus-B")
    df = run_grid(a, "phone", res, seeds=(0,), layers=["conv"], progress=False)
    assert set(df["store"]) == {ResultsTable(res).load()["store"].iloc[0]} and df["store"].iloc[0]
    # Same store again: every cell is reused.
    assert run_grid(a, "phone", res, seeds=(0,), layers=["conv"], progress=False).empty
    # A re-extracted store (another fingerprint) under the same encoder name: never reused,
    # never mixed in silently.
    with pytest.raises(GridError, match="computed from another embedding store"):
        run_grid(b, "phone", res, seeds=(0,), layers=["conv"], progress=False)
    new = run_grid(b, "phone", res, seeds=(0,), layers=["conv"], progress=False, stale="retire")
    assert len(new) == len(df) and set(new["store"]) != set(df["store"])
    table = ResultsTable(res)
    assert set(table.load()["store"]) == set(new["store"])  # the old cells left the table...
    assert list((res / "superseded").glob("part-*.csv"))     # ...but were not deleted


def test_unkeyed_table_from_older_probekit_is_stale(tmp_path):
    res = tmp_path / "res"
    run_grid(_store("A"), "phone", res, seeds=(0,), layers=["conv"], progress=False)
    part = ResultsTable(res).parts()[0]
    import pandas as pd
    old = pd.read_csv(part).drop(columns=["store"])  # a table written before the column
    old.to_csv(part, index=False)
    assert set(ResultsTable(res).load()["store"]) == {""}
    with pytest.raises(GridError, match="unkeyed"):
        run_grid(_store("A"), "phone", res, seeds=(0,), layers=["conv"], progress=False)


def test_claim_output_rules(tmp_path):
    out = claim_output(tmp_path / "a", "analysis", contents=["*.png"])
    assert read_stamp(out)["kind"] == "analysis"
    (out / "old.png").write_text("x")
    (out / "mine.txt").write_text("a file the user put there")
    claim_output(out, "analysis")  # reuse keeps contents
    assert (out / "old.png").exists()
    claim_output(out, "analysis", fresh=True)  # clears only what the stamp lists
    assert not (out / "old.png").exists() and (out / OUTPUT_STAMP_NAME).exists()
    assert (out / "mine.txt").read_text() == "a file the user put there"
    with pytest.raises(OutputFolderError, match="holds a probekit analysis"):
        claim_output(out, "study")
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    for kw in ({}, {"overwrite": True}, {"overwrite": True, "fresh": True}):
        with pytest.raises(OutputFolderError, match="not written by probekit"):
            claim_output(foreign, "analysis", **kw)
    with pytest.raises(OutputFolderError, match="refusing to delete"):
        remove_output(foreign)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_study_overwrite_refuses_a_foreign_folder(tmp_path):
    from probekit.demo import demo_config
    from probekit.study.run import StudyError, prepare_output

    data = tmp_path / "data"
    data.mkdir()
    (data / "recordings.txt").write_text("mine")
    with pytest.raises(StudyError, match="not written by probekit"):
        prepare_output(data, demo_config(), overwrite=True)
    assert (data / "recordings.txt").read_text() == "mine"
    # The CLI says the same in one line and deletes nothing.
    assert main(["demo", "--out", str(data), "--overwrite", "-q"]) == 2
    assert (data / "recordings.txt").exists()


def test_study_config_change_keeps_unchanged_stages(tmp_path):
    from dataclasses import replace

    from probekit.demo import demo_config
    from probekit.study.run import prepare_output

    cfg = demo_config()
    out = tmp_path / "study"
    assert prepare_output(out, cfg, overwrite=False) is False
    enc = cfg.encoders[0].display.replace("/", "-")
    store_dir = out / "work" / "stores" / enc
    store_dir.mkdir(parents=True)
    (store_dir / "store.json").write_text("{}")
    res = out / "work" / "results"
    run_grid(_store("A"), "phone", res, seeds=(0,), layers=["conv"], progress=False,
             encoder=cfg.encoders[0].display)
    assert prepare_output(out, cfg, overwrite=False) is True
    (out / "run.json").write_text("{}")  # the run finished (an unfinished one keeps no folder)
    # Only the analysis settings change: stores and results are kept.
    changed = replace(cfg, n_boot=cfg.n_boot + 1)
    with pytest.raises(Exception, match="differs in"):
        prepare_output(out, changed, overwrite=False)
    assert prepare_output(out, changed, overwrite=True) is False
    assert store_dir.exists() and ResultsTable(res).parts()
    # The phone task's seeds change: its results are retired, the store kept.
    tasks = tuple(replace(t, seeds=(5,)) if t.task == "phone" else t for t in changed.tasks)
    assert prepare_output(out, replace(changed, tasks=tasks), overwrite=True) is False
    assert store_dir.exists() and not ResultsTable(res).parts()
    assert list((res / "superseded").glob("part-*.csv"))
    # The corpus changes: the store goes too.
    assert prepare_output(out, replace(changed, tasks=tasks, corpus={"synthetic": "small"}),
                          overwrite=True) is False
    assert not store_dir.exists()


def _analysis_inputs(tmp_path):
    res = tmp_path / "res"
    run_grid(_store("A"), "phone", res, seeds=(0,), progress=False)
    return res


def test_analyze_owns_its_folder_and_report_refuses_another(tmp_path):
    res = _analysis_inputs(tmp_path)
    an = tmp_path / "analysis"
    assert main(["-q", "analyze", str(res), "--out", str(an), "--n-boot", "20", "--n-perm", "20"]) == 0
    stale_fig = an / "figures" / "layer_curves_old_run.png"
    stale_fig.write_bytes(b"\x89PNG old")
    assert main(["analyze", str(res), "--out", str(an), "--n-boot", "20", "--n-perm", "20", "-q"]) == 0
    assert not stale_fig.exists()  # leftover figures cannot leak into a new report
    # analyze refuses a folder probekit did not write.
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    assert main(["analyze", str(res), "--out", str(foreign), "--n-boot", "20", "--n-perm", "20",
                 "--overwrite", "-q"]) == 2
    assert (foreign / "notes.txt").exists()
    # report: a rebuild of the same analysis is fine; another analysis's report is refused.
    rep = tmp_path / "rep"
    assert main(["report", str(an), "--out", str(rep)]) == 0
    assert main(["report", str(an), "--out", str(rep)]) == 0
    an2 = tmp_path / "analysis2"
    assert main(["analyze", str(res), "--out", str(an2), "--n-boot", "20", "--n-perm", "20", "-q"]) == 0
    before = (rep / "report.html").read_text()
    assert main(["report", str(an2), "--out", str(rep)]) == 2
    assert (rep / "report.html").read_text() == before
    assert main(["report", str(an2), "--out", str(rep), "--overwrite"]) == 0
    # A report.html probekit did not write is refused too.
    other = tmp_path / "site"
    other.mkdir()
    (other / "report.html").write_text("<html>my page</html>")
    assert main(["report", str(an), "--out", str(other)]) == 2
    assert "my page" in (other / "report.html").read_text()


def test_intersectional_grid_analysis_and_report(tmp_path):
    meta = _meta(speakers=8)
    meta["group:gender"] = np.where(meta["speaker"].str[-1].astype(int) % 2 == 0, "female", "male")
    store = _store("A", meta, attributes=("accent", "gender"))
    res = tmp_path / "res"
    df = run_grid(store, "phone", res, group_attribute="accent*gender", seeds=(0,),
                  layers=["conv"], progress=False)
    assert set(df["group_attribute"]) == {"accent*gender"}
    assert "g3*male" in set(df["test_group"]) and "all-but:g1*female" in set(df["train_set"])
    an = tmp_path / "an"
    assert main(["-q", "analyze", str(res), "--out", str(an), "--n-boot", "20", "--n-perm", "20"]) == 0
    assert "g3*male" in (an / "findings.md").read_text() + "".join(
        p.read_text() for p in an.glob("*.csv"))
    assert main(["report", str(an), "--out", str(tmp_path / "rep")]) == 0
    assert "accent*gender" in (tmp_path / "rep" / "report.html").read_text()
    # Small intersections are refused with the rule.
    small = _store("B", _meta(speakers=4).assign(**{"group:gender": lambda d: np.where(
        d["speaker"].str[-1].astype(int) % 2 == 0, "female", "male")}), attributes=("accent", "gender"))
    with pytest.raises(GridError, match=r"fewer than 4 speakers: g1\*female \(2\)"):
        run_grid(small, "phone", tmp_path / "res2", group_attribute="accent*gender", seeds=(0,),
                 progress=False)
