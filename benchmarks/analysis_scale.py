"""The full bias analysis (:func:`probekit.bias.analysis.analyze`) at the size of a real study.

A simulated results table (:func:`probekit.testing.simulate.simulate_results`) with the
grid's design: ``--speakers`` speakers (default 2,000) in 8 groups, 25 layers, 3 tasks, 10
splits. The two content tasks (phone; asr with a ``cer`` metric) test half of each group's
speakers in each split (the grid's default ``test_speakers=0.5``: over 10 splits the analysis
sees all but ~0.1 % of the 2,000 as test speakers) with every training set of a grid
(``all``, ``all-matched``, 8 single-group and 8 all-but sets); the speaker task tests every
speaker in every split with ``all`` only, as the grid gives it. Analysed with 1,000 bootstrap
and 1,000 permutation replicates.

Each analysis runs in a fresh subprocess; its wall time and its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of that subprocess, which includes building
the table) are reported, with its CPU time (user + system: on a shared machine the wall time
also counts other people's work; BLAS runs on one thread in the analysis, so CPU seconds are
the wall seconds of an idle core). The baseline measured in the same run is the same
analysis on a table of ``--base-speakers`` speakers (default 250, 1/8 of the size):
``scaling`` is the full table's CPU seconds per speaker over the baseline's (1.0 = linear).

``--fraction F`` (0 < F <= 1) runs the full design on ``F`` of the speakers and extrapolates
time and memory linearly to the full size (said in the BENCH line as ``scaled_from=``).

Usage: python benchmarks/analysis_scale.py [--speakers 2000] [--base-speakers 250]
    [--layers 25] [--splits 10] [--n-boot 1000] [--n-perm 1000] [--fraction 1.0] [--max-gb 16]
Last line: ``BENCH analysis_sec=... peak_rss_gb=... analysis_cpu_sec=... scaling=... rows=...``
(with ``scaled_from=N`` when ``--fraction`` ran N speakers and extrapolated linearly).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

GROUPS = 8


def simulated_table(speakers: int, layers: int, splits: int, seed: int = 0):
    """The study-size results table: 3 tasks, every speaker tested in every split."""
    import numpy as np
    import pandas as pd

    from probekit.testing.simulate import simulate_results

    spg = speakers // GROUPS
    base = np.linspace(0.45, 0.15, layers) ** 1.0
    common = dict(n_groups=GROUPS, speakers_per_group=spg, n_layers=layers,
                  seeds=range(splits), base_error=base,
                  group_offset={"g1": 0.03, "g5": -0.02},
                  own_group_advantage={"g1": 0.02}, split_sd=0.005, encoder="sim",
                  include_all_rows=True)
    parts = [
        simulate_results(task="phone", probe="lda", train_sets="full", items_per_speaker=60,
                         test_speakers=0.5, random_state=seed + 1, **common),
        simulate_results(task="asr", probe="ctc", train_sets="full", items_per_speaker=200,
                         test_speakers=0.5, random_state=seed + 2, **common).assign(metric="cer"),
        simulate_results(task="speaker", probe="lda", train_sets=("all",), items_per_speaker=8,
                         test_speakers=1.0, random_state=seed + 3, **common),
    ]
    return pd.concat(parts, ignore_index=True)


def _child(args) -> None:
    """One analysis in this (fresh) process: prints a JSON line with its measures."""
    import resource

    # a guard for a shared machine: past this much address space the child fails with a
    # MemoryError instead of pushing the machine out of memory
    cap = int(args.max_gb * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from probekit.bias.analysis import analyze

    def cpu():
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    t0 = time.perf_counter()
    df = simulated_table(args.child, args.layers, args.splits)
    t1, c1 = time.perf_counter(), cpu()
    an = analyze(df, n_boot=args.n_boot, n_perm=args.n_perm, seed=0)
    t2, c2 = time.perf_counter(), cpu()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"speakers": args.child, "rows": len(df), "build_sec": t1 - t0,
                      "analysis_sec": t2 - t1, "analysis_cpu_sec": c2 - c1,
                      "peak_rss_gb": rss_kb / 2 ** 20,
                      "tables": {k: len(v) for k, v in an.tables.items()}}))


def _run(speakers: int, args) -> dict:
    cmd = [sys.executable, __file__, "--child", str(speakers), "--layers", str(args.layers),
           "--splits", str(args.splits), "--n-boot", str(args.n_boot),
           "--n-perm", str(args.n_perm), "--max-gb", str(args.max_gb)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{speakers} speakers, {res['rows']:,} rows: table {res['build_sec']:.1f} s, "
          f"analysis {res['analysis_sec']:.1f} s ({res['analysis_cpu_sec']:.1f} s CPU), "
          f"peak RSS {res['peak_rss_gb']:.2f} GB",
          flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speakers", type=int, default=2000)
    ap.add_argument("--base-speakers", type=int, default=250)
    ap.add_argument("--layers", type=int, default=25)
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--n-perm", type=int, default=1000)
    ap.add_argument("--fraction", type=float, default=1.0)
    ap.add_argument("--max-gb", type=float, default=16.0,
                    help="address-space cap of each analysis process (a MemoryError past it)")
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(args)
    if not 0 < args.fraction <= 1:
        ap.error("--fraction must be in (0, 1]")
    run_spk = max(GROUPS * 2, int(round(args.speakers * args.fraction / GROUPS)) * GROUPS)
    base = _run(args.base_speakers, args)
    full = _run(run_spk, args)
    scale = args.speakers / run_spk
    per_spk = (full["analysis_cpu_sec"] / run_spk) / (base["analysis_cpu_sec"] / args.base_speakers)
    sec, rss = full["analysis_sec"] * scale, full["peak_rss_gb"] * scale
    cpu_sec = full["analysis_cpu_sec"] * scale
    extra = f" scaled_from={run_spk}" if run_spk != args.speakers else ""
    print(f"BENCH analysis_sec={sec:.1f} peak_rss_gb={rss:.2f} analysis_cpu_sec={cpu_sec:.1f} "
          f"scaling={per_spk:.2f} "
          f"speakers={args.speakers} rows={int(full['rows'] * scale)} layers={args.layers} "
          f"splits={args.splits} n_boot={args.n_boot} n_perm={args.n_perm} "
          f"base_speakers={args.base_speakers} base_sec={base['analysis_sec']:.1f}{extra}")


if __name__ == "__main__":
    main()
