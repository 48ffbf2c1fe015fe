"""Fast versions of benchmarks/calibration.py: few draws, loose but real bounds.

The benchmark (400 draws per design) is the proof; these runs catch a test that has lost its
level or its power. Bounds are the 99.9% binomial range around the nominal rate for the
number of cells simulated, widened a little for the dependence between cells.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "calibration", Path(__file__).parents[2] / "benchmarks" / "calibration.py")
cal = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cal)


@pytest.mark.parametrize("design,kw", [("a5", {}), ("b", {"variance_inflation": {"g1": 6.0}}),
                                       ("c", {"split_sd": 0.04, "spk": 6})])
def test_null_rejection_and_coverage(design, kw):
    r = cal.null_design(design, 40, **kw)
    for test in ("worse", "gap", "own"):
        assert r[f"reject_{design}_{test}"] <= 0.11, (test, r)
    assert r[f"reject_{design}_trend"] <= 0.15, r
    for iv in ("group_error", "overall", "own"):
        assert 0.86 <= r[f"cover_{design}_{iv}"] <= 1.0, (iv, r)


def test_typing_family_wise_under_global_null():
    ty, any_label = cal.typing_design(16, L=6)
    assert any_label <= 0.25
    assert (ty["type"] != "neither").mean() <= 0.03
