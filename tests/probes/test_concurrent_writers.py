"""Issue 24: two runs into one results folder never double-count.

Two grid processes on one table at once write each cell once (the table equals a single
run's); a table that already holds a cell twice (an older probekit) is refused by name, by
``load``, ``probe`` and ``analyze``, and ``probekit results dedupe`` repairs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from probekit.cli import main
from probekit.probes.grid import run_grid
from probekit.probes.results import (CELL_KEYS, ROW_KEYS, DuplicateCellsError, ResultsTable)

from tests.probes.test_grid import FakeStore, _meta

ROOT = Path(__file__).resolve().parents[2]

# A grid process that starts when the file `go` appears, so that both start together.
_GRID = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.probes.test_grid import FakeStore, _meta
from probekit.probes.grid import run_grid
go = Path({go!r})
Path({ready!r}).touch()
while not go.exists():
    time.sleep(0.005)
run_grid(FakeStore(_meta()), "phone", {out!r}, **{kw!r})
"""
KW = dict(seeds=(0, 1), train_sets=("all", "single"), progress=False)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(ROW_KEYS).reset_index(drop=True)


def test_two_grid_processes_on_one_table_write_each_cell_once(tmp_path):
    out, go = tmp_path / "shared", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen(
        [sys.executable, "-c", _GRID.format(root=str(ROOT), go=str(go),
                                            out=str(out), ready=str(tmp_path / f"ready{i}"),
                                            kw=KW)],
        env=env, stderr=subprocess.PIPE, text=True) for i in range(2)]
    single = run_grid(FakeStore(_meta()), "phone", tmp_path / "single", **KW)
    t0 = time.monotonic()
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.monotonic() - t0 < 120 and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()  # both are past their imports: they start together
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    table = ResultsTable(out)
    both = table.load()  # refuses a cell in two parts (DuplicateCellsError)
    assert not both.duplicated(ROW_KEYS).any()
    pd.testing.assert_frame_equal(_sorted(both), _sorted(single))


def _damaged(tmp_path) -> tuple[Path, Path, Path]:
    """A results table with one part copied (what two unlocked runs left behind)."""
    res = tmp_path / "res"
    run_grid(FakeStore(_meta()), "phone", res, seeds=(0,), train_sets=("all", "single"),
             progress=False)
    first = ResultsTable(res).parts()[0]
    copy = res / "part-29990101T000000000000-dup000.csv"
    shutil.copy(first, copy)
    return res, first, copy


def test_analyze_refuses_a_table_with_a_cell_twice_naming_cells_and_parts(tmp_path, capsys):
    res, first, copy = _damaged(tmp_path)
    cells = pd.read_csv(first, dtype=str)[CELL_KEYS].drop_duplicates()
    assert main(["-q", "analyze", str(res), "--out", str(tmp_path / "an"), "--n-boot", "20",
                 "--n-perm", "20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("probekit: error:") and len(err.strip().splitlines()) == 1
    assert "written more than once" in err and first.name in err and copy.name in err
    first_cell = sorted(map(tuple, cells.to_numpy().tolist()))[0]
    assert f"({', '.join(first_cell)})" in err
    assert "probekit results dedupe" in err
    assert not (tmp_path / "an").exists()
    # the grid refuses to add to it too, rather than skip cells by a damaged table
    with pytest.raises(DuplicateCellsError, match="written more than once"):
        run_grid(FakeStore(_meta()), "phone", res, seeds=(0, 1), progress=False)


def test_results_dedupe_keeps_each_cells_first_part(tmp_path, capsys):
    res, first, copy = _damaged(tmp_path)
    clean = pd.concat([pd.read_csv(p, keep_default_na=False, dtype={"unit": str})
                       for p in ResultsTable(res).parts() if p != copy])
    assert main(["-q", "results", "dedupe", str(res)]) == 0
    assert "moved 1 part(s)" in capsys.readouterr().out
    assert (res / "superseded" / copy.name).is_file() and not copy.exists()
    table = ResultsTable(res).load()
    assert len(table) == len(clean)
    assert main(["-q", "results", "dedupe", str(res)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_dedupe_splits_a_part_that_holds_new_and_repeated_cells(tmp_path):
    res = tmp_path / "res"
    run_grid(FakeStore(_meta()), "phone", res, seeds=(0,), train_sets=("all",), progress=False)
    table = ResultsTable(res)
    n_clean = len(table.load())
    one = table.read_part(table.parts()[0])
    other = run_grid(FakeStore(_meta()), "phone", tmp_path / "b", seeds=(5,),
                     train_sets=("all",), progress=False)
    mixed = pd.concat([one, other])  # a repeat of part 0 plus cells of seed 5
    mixed.to_csv(res / "part-29990101T000000000000-mixed0.csv", index=False)
    with pytest.raises(DuplicateCellsError):
        table.load()
    moved, written = table.dedupe()
    assert len(moved) == 1 and len(written) == 1
    after = table.load()
    assert set(after.seed) == {0, 5} and len(after) == n_clean + len(other)
    assert len(after[after.seed == 5]) == len(other)


def test_append_refuses_a_cell_the_table_holds(tmp_path):
    res = tmp_path / "res"
    df = run_grid(FakeStore(_meta()), "phone", res, seeds=(0,), train_sets=("all",),
                  progress=False)
    table = ResultsTable(res)
    n = len(table.parts())
    with pytest.raises(DuplicateCellsError, match="already holds"):
        table.append(df)
    assert table.append(df, done="skip") is None and len(table.parts()) == n


def test_a_repeated_row_in_a_frame_is_refused_by_analyze(tmp_path):
    from probekit.bias.analysis import analyze

    df = run_grid(FakeStore(_meta()), "phone", tmp_path / "res", seeds=(0,),
                  train_sets=("all",), progress=False)
    with pytest.raises(DuplicateCellsError, match="repeat another row"):
        analyze(pd.concat([df, df.iloc[:3]]), n_boot=10, n_perm=10)
