"""Fast version of benchmarks/calib_findings.py: one global-null study at 13 layers through the
library's analysis; the benchmark (100 studies per design) is the proof of the rate."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "calib_findings", Path(__file__).parents[2] / "benchmarks" / "calib_findings.py")
cf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cf)


def test_global_null_study_counts_findings_at_the_finding_level():
    r = cf.global_null("L13", 1, seed0=1)
    # phone: worse, unequal means, trend, own vs broad, systematic; speaker: worse, unequal
    # means, trend -> 8 families of one encoder
    assert r["findings_level_L13"] == 0.05 / 8
    assert r["any_finding_global_null_L13"] <= r["any_finding_uncontrolled_L13"]
    assert set(r) >= {"any_finding_global_null_L13", "findings_per_report_L13",
                      "ratio_vs_uncontrolled_L13"}
