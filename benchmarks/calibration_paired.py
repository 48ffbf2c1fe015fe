"""Calibration of the paired change without a training draw (:mod:`probekit.bias.paired`:
WER before/after; probe results use :mod:`probekit.bias.change`, ``benchmarks/calib_paired.py``).

Simulated paired tables with a realistic null: 4 groups x 5 test speakers, 4 layers, 100-300
items per speaker, a real gap before (group means differ), unequal speaker variance (one
group's speakers spread 3x more), a speaker effect shared by both encoders and an
encoder-specific speaker effect drawn independently for each encoder (the adapted model moves
speakers around at random without changing any group systematically). Under "no change" the
before and after results of a speaker are exchangeable, which is the null the swap test
assumes; the planted alternative removes 80% of the group effects after fine-tuning at one
layer (the gap there falls from about 0.16 to 0.03).

Keys (rates over ``n_draws`` simulated tables, 5% level):

* ``reject_paired_<test>``: rejection under the null. ``difference`` / ``macro`` /
  ``overall``: raw paired permutation p at layer 0; ``difference_fwer``: any layer's
  Westfall-Young max-T adjusted p (family-wise error over the 4 layers).
* ``power_paired_<test>``: rejection at the planted layer (``difference``: raw p;
  ``difference_fwer``: adjusted p).
* ``cover_paired_<statistic>``: paired speaker-bootstrap interval covering the true change
  (0 under the null) at layer 0.

    python benchmarks/calibration_paired.py [n_draws]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from probekit.bias.metrics import parse_statistic
from probekit.bias.paired import paired_change

G, SPK, L = 4, 5, 4


def simulate_pair(rng: np.random.Generator, *, reduction: float = 0.0, layer: int = 2):
    """(Ka, Na, Kb, Nb, groups): per-speaker counts (L, S) of two encoders.

    ``reduction`` removes that share of the group effects (logit scale) after fine-tuning,
    at ``layer`` only: 0 is the null, 1 removes the gap there."""
    S = G * SPK
    groups = np.repeat([f"g{g}" for g in range(G)], SPK)
    codes = np.repeat(np.arange(G), SPK)
    group_mu = np.array([-1.6, -1.4, -1.2, -0.7])                  # a real gap before
    spk_sd = np.array([0.25, 0.25, 0.25, 0.75])[codes]             # unequal speaker variance
    layer_mu = np.linspace(0.3, -0.3, L)[:, None]
    u = rng.normal(0, spk_sd)                                      # shared speaker effect
    n = rng.integers(100, 301, size=S)                            # e.g. phones per speaker
    N = np.broadcast_to(n, (L, S)).astype(float)

    def draw(shift):
        v = rng.normal(0, 0.2, size=(L, S))                        # encoder x speaker effect
        eta = group_mu[codes] + u + layer_mu + v + shift
        return rng.binomial(np.broadcast_to(n, (L, S)), 1 / (1 + np.exp(-eta))).astype(float)

    shift = np.zeros((L, S))
    shift[layer] = -reduction * (group_mu - group_mu.mean())[codes]
    return draw(0.0), N, draw(shift), N.copy(), groups


def run(n_draws: int = 400, seed: int = 0, *, n_perm: int = 999, n_boot: int = 999) -> dict:
    """Rejection, power and coverage rates (see the module docstring)."""
    rng = np.random.default_rng(seed)
    tests = ("difference", "macro", "overall")
    hits = {f"reject_paired_{t}": 0 for t in (*tests, "difference_fwer")}
    hits.update({"power_paired_difference": 0, "power_paired_difference_fwer": 0})
    hits.update({f"cover_paired_{t}": 0 for t in tests})
    for i in range(n_draws):
        for planted in (False, True):
            Ka, Na, Kb, Nb, groups = simulate_pair(rng, reduction=0.8 if planted else 0.0)
            pc = paired_change(Ka, Na, Kb, Nb, groups, statistics=tests, n_perm=n_perm,
                               n_boot=n_boot, seed=int(rng.integers(2 ** 31)))
            # rows are named by weighting (pooled_difference, ...); index them by kind
            t = pc.table.assign(statistic=pc.table["statistic"].map(
                lambda s: parse_statistic(s)[0])).set_index(["statistic", "row"])
            if planted:
                hits["power_paired_difference"] += t.at[("difference", 2), "p_value"] <= 0.05
                hits["power_paired_difference_fwer"] += t.at[("difference", 2), "p_fwer"] <= 0.05
                continue
            for s in tests:
                hits[f"reject_paired_{s}"] += t.at[(s, 0), "p_value"] <= 0.05
                lo, hi = t.at[(s, 0), "ci_low"], t.at[(s, 0), "ci_high"]
                hits[f"cover_paired_{s}"] += lo <= 0 <= hi
            hits["reject_paired_difference_fwer"] += \
                (t.loc["difference", "p_fwer"] <= 0.05).any()
    return {k: round(float(v) / n_draws, 4) for k, v in hits.items()}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    t0 = time.perf_counter()
    res = run(n)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print("BENCH " + " ".join(f"{k}={v}" for k, v in res.items()))
