"""Null rejection and power of :func:`probekit.bias.counts.count_model` on simulated tables.

``run(n_draws, seed)`` returns ``{"reject_<design>_gee": rate,
"power_<design>_gee": rate}`` for three designs (3 layers, 3 splits each):

* ``b``: unequal speaker variance at equal means (g1's between-speaker variance x6),
  4 groups x 10 speakers; power: g0 planted +0.10 (probability scale);
* ``c``: few training speakers, modelled as a per-(layer, split) shift of every speaker's
  error (``split_sd=0.05``), 4 groups x 10 speakers; power: g0 +0.10;
* ``d``: 5 test speakers per group, 3 groups; power: g0 +0.15.

``reject`` is the per-group test's rejection rate at unadjusted alpha 0.05 averaged over
groups and layers; ``power`` the planted group's rejection rate averaged over layers.
``python benchmarks/calibration_counts.py [n_draws]`` prints one ``BENCH key=value ...`` line.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from probekit.bias.counts import count_model
from probekit.testing.simulate import simulate_results

COMMON = dict(n_layers=3, seeds=(0, 1, 2), items_per_speaker=60, include_all_rows=False)
DESIGNS = {
    "b": (dict(n_groups=4, speakers_per_group=10, variance_inflation={"g1": 6.0}), 0.10),
    "c": (dict(n_groups=4, speakers_per_group=10, split_sd=0.05), 0.10),
    "d": (dict(n_groups=3, speakers_per_group=5), 0.15),
}


def _rates(params, offset, n_draws, seed, alpha=0.05):
    rej, powr, bad = [], [], 0
    for i in range(n_draws):
        rs = seed * 100_003 + i
        null = count_model(simulate_results(**COMMON, **params, random_state=rs))
        bad += int((null["status"] != "ok").sum())
        rej.append(np.mean(null["p_value"].to_numpy() < alpha))
        alt = count_model(simulate_results(**COMMON, **params, group_offset={"g0": offset},
                                           random_state=rs + 50_000_000))
        a = alt[alt["group"] == "g0"]
        powr.append(np.mean(a["p_value"].to_numpy() < alpha))
    return float(np.mean(rej)), float(np.mean(powr)), bad


def run(n_draws: int = 400, seed: int = 0) -> dict:
    """Per-design null rejection and power rates of the count model's per-group test."""
    out = {}
    for name, (params, offset) in DESIGNS.items():
        r, p, _ = _rates(params, offset, n_draws, seed)
        out[f"reject_{name}_gee"], out[f"power_{name}_gee"] = r, p
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    t0 = time.time()
    res = run(n, seed=0)
    print("BENCH " + " ".join(f"{k}={v:.4f}" for k, v in res.items())
          + f" n_draws={n} seconds={time.time() - t0:.0f}")
