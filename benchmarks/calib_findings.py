"""Finding-level calibration (issue 19.4): how often does a whole report state at least one
false finding when no group differs at all?

A study under the global null (every group the same error at every layer; probes retrained
per split) goes through the library's own analysis (:func:`probekit.bias.analysis.analyze`,
which takes every decision once, :mod:`probekit.bias.decision`), and every finding the report
would state (:func:`probekit.bias.decision.findings_table`: a worse group, unequal means, a
trend, a type, an own-vs-broad win) is counted. Designs:

* ``demo``: the demo's shape: 10 groups x 10 speakers, 5 layers; phone probes with every
  own-group probe and ``all-matched`` over 10 splits (typing), speaker and accent-ID probes
  over 3 splits, ASR over 1 split;
* ``L13``: 4 groups x 10 speakers, 13 layers; phone (typing, 10 splits) and speaker (3 splits).

Keys: ``any_finding_global_null_<design>`` (goal <= 0.08), ``findings_level_<design>`` (the
per-family level the design gets), ``findings_per_report_<design>`` (mean number of false
findings), and the baseline from the same analyses: ``any_finding_uncontrolled_<design>``
(every family at ``alpha`` on its own, the report before the finding-level family) with
``ratio_vs_uncontrolled_<design>``. Run standalone (``python benchmarks/calib_findings.py [--draws N]``: prints its own
BENCH line) or through :func:`findings_keys` (a dict of keys) from ``calibration.py``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from probekit.bias.analysis import analyze
from probekit.bias.decision import decide, findings_table
from probekit.testing.simulate import simulate_results

ALPHA = 0.05
#: enough for the demo's finding level (0.05 / 14: the trend's smallest p is 2 / (N_PERM + 1))
N_PERM = 599


def _tasks(design: str, draw: int) -> pd.DataFrame:
    """One global-null results table of ``design``."""
    if design == "demo":
        G, spk, L = 10, 10, 5
        spec = [("phone", range(10), "full"), ("speaker", range(3), ("all",)),
                ("group:accent", range(3), ("all",)), ("asr", range(1), ("all",))]
    else:
        G, spk, L = 4, 10, 13
        spec = [("phone", range(10), "full"), ("speaker", range(3), ("all",))]
    base = np.linspace(0.15, 0.45, L)
    parts = []
    for ti, (task, seeds, sets) in enumerate(spec):
        if sets == "full":
            sets = ["all", "all-matched"] + [f"g{i}" for i in range(G)]
        parts.append(simulate_results(n_groups=G, speakers_per_group=spk, n_layers=L,
                                      seeds=tuple(seeds), train_sets=sets, base_error=base,
                                      items_per_speaker=60, concentration=30, split_sd=0.01,
                                      interaction_sd=0.015, include_all_rows=False, task=task,
                                      random_state=1000 * draw + ti))
    return pd.concat(parts, ignore_index=True)


def global_null(design: str, draws: int, seed0: int = 0) -> dict[str, float]:
    anyf, count, base, level = [], [], [], np.nan
    for d in range(seed0, seed0 + draws):
        # the count model states no finding (descriptive): left out for speed
        an = analyze(_tasks(design, d), n_boot=20, n_perm=N_PERM, alpha=ALPHA, seed=d,
                     with_counts=False)
        f = findings_table(an.tables)
        anyf.append(len(f) > 0)
        count.append(len(f))
        fam = an.tables["decision_families"]
        level = float(fam["level"].min())
        # baseline, same analyses: every family at alpha on its own (no finding-level control)
        raw = {k: v.drop(columns=[c for c in v.columns if c.startswith("decision")])
               for k, v in an.tables.items() if k != "decision_families"}
        base.append(len(findings_table(decide(raw, alpha=ALPHA * int(fam["n_families"].max()),
                                              n_perm=N_PERM))) > 0)
    rate, b = float(np.mean(anyf)), float(np.mean(base))
    return {f"any_finding_global_null_{design}": rate,
            f"any_finding_uncontrolled_{design}": b,
            f"ratio_vs_uncontrolled_{design}": rate / b if b else float("nan"),
            f"findings_per_report_{design}": float(np.mean(count)),
            f"findings_level_{design}": level}


def findings_keys(draws: int = 100) -> dict[str, float]:
    """Every key of this benchmark (``draws`` reports per design)."""
    out = {}
    for design in ("L13", "demo"):
        t0 = time.perf_counter()
        out.update(global_null(design, draws))
        out[f"seconds_per_report_{design}"] = (time.perf_counter() - t0) / draws
        print(" ".join(f"{k}={v:.4g}" for k, v in out.items() if k.endswith(design)),
              file=sys.stderr, flush=True)
    return out


def run(n_draws: int = 100, seed: int = 0) -> dict[str, float]:
    """The :data:`calibration.EXTRA_DESIGNS` entry point (draws are seeded by their index)."""
    return findings_keys(n_draws)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=100)
    args = ap.parse_args(argv)
    keys = findings_keys(args.draws)
    print("BENCH " + " ".join(f"{k}={v:.4g}" for k, v in keys.items()) + f" draws={args.draws}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
