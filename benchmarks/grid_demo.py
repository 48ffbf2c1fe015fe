"""The demo's phone grid, shared statistics vs the per-cell path, on one store in one run.

The demo (``probekit demo``) runs the phone task with the LDA probe over every layer, 10
seeds and the task's default training sets. This times that grid through
:func:`~probekit.probes.grid.run_grid` twice on the same store: ``probes=("lda",)`` (the
shared-statistics path, :mod:`probekit.probes.grid_stats`) and ``probes=(LDAProbe(),)`` (the
same probe as an estimator instance, which takes the per-cell path: one direct fit and one
prediction per cell, today's path for every other probe). The per-cell baseline runs on
``--baseline-seeds`` seeds only (default 2 of 10; every layer and training set) and is scaled
per cell to the full grid. Both write fresh results folders; the rows of the common cells
must be equal (``max_value_diff``).

``--before DIR`` also times the same grid (every seed) with the probekit in ``DIR``, a
checkout from before issue 23 (``git worktree add DIR 1246756``: the per-cell path with the
solve and reads of that time), in a subprocess on the same store, and prints
``demo_grid_speedup_before`` = its seconds / the shared path's: the issue's "at most a fifth
of its time before". Today's per-cell path already has that issue's Cholesky solve and
block reads, so ``demo_grid_speedup`` (against it) is the smaller figure.

Usage: ``python benchmarks/grid_demo.py --store WORK/stores/whisper-tiny.en [--before DIR]``
(a store the demo extracted; without ``--store`` the benchmark store of
``benchmarks/probes.py``). Last line: ``BENCH demo_grid_speedup=... shared_sec=...
per_cell_sec_scaled=... max_value_diff=... [demo_grid_speedup_before=... before_sec=...]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", help="an extracted store (default: benchmarks/probes.py's)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--baseline-seeds", type=int, default=2)
    ap.add_argument("--before", help="a probekit checkout from before issue 23, timed too")
    args = ap.parse_args()
    logging.disable(logging.WARNING)

    from probekit.probes.grid import run_grid
    from probekit.probes.lda import LDAProbe
    from probekit.store import EmbeddingStore

    if args.store:
        store = EmbeddingStore.open(args.store)
    else:
        from benchmarks.probes import default_store
        store = default_store()
    seeds = list(range(args.seeds))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        shared = run_grid(store, "phone", Path(tmp) / "shared", probes=("lda",), seeds=seeds,
                          progress=False)
        t_shared = time.perf_counter() - t0
        print(f"shared statistics: {t_shared:.1f} s", flush=True)
        t0 = time.perf_counter()
        cell = run_grid(store, "phone", Path(tmp) / "cell", probes=(LDAProbe(),),
                        seeds=seeds[: args.baseline_seeds], progress=False)
        t_cell = time.perf_counter() - t0
        t_before = _time_before(args.before, store.root, seeds, Path(tmp) / "before") \
            if args.before else None
    keys = ["layer", "train_set", "seed", "test_group", "unit", "metric"]
    n_shared = shared.groupby(["layer", "train_set", "seed"]).ngroups
    n_cell = cell.groupby(["layer", "train_set", "seed"]).ngroups
    both = shared.merge(cell, on=keys, suffixes=("", "_cell"))
    diff = float(np.abs(both["value"] - both["value_cell"]).max())
    assert len(both) == len(cell), "per-cell rows without a shared-path twin"
    scaled = t_cell / n_cell * n_shared
    print(f"store: {store}")
    print(f"shared statistics: {n_shared} cells in {t_shared:.1f} s; per cell: {n_cell} cells in "
          f"{t_cell:.1f} s ({t_cell / n_cell:.3f} s/cell, {scaled:.1f} s scaled to {n_shared})")
    before = "" if t_before is None else \
        f" demo_grid_speedup_before={t_before / t_shared:.1f} before_sec={t_before:.1f}"
    if t_before is not None:
        print(f"before issue 23 ({args.before}): {t_before:.1f} s for the same grid")
    print(f"BENCH demo_grid_speedup={scaled / t_shared:.1f} shared_sec={t_shared:.1f} "
          f"per_cell_sec_scaled={scaled:.1f} max_value_diff={diff:.3g}{before}")


def _time_before(checkout: str, store_root, seeds, out) -> float:
    """Seconds of the phone grid run by the probekit in ``checkout`` (a subprocess)."""
    code = ("import logging, sys, time; logging.disable(logging.WARNING)\n"
            "from probekit.store import EmbeddingStore\nfrom probekit.probes.grid import run_grid\n"
            "store = EmbeddingStore.open(sys.argv[1]); t = time.perf_counter()\n"
            "run_grid(store, 'phone', sys.argv[2], seeds=[int(s) for s in sys.argv[3:]], "
            "progress=False)\nprint(time.perf_counter() - t)")
    env = dict(os.environ, PYTHONPATH=str(Path(checkout).resolve()))
    res = subprocess.run([sys.executable, "-c", code, str(Path(store_root).resolve()),
                          str(Path(out).resolve()), *map(str, seeds)],
                         capture_output=True, text=True, env=env, check=False, cwd=checkout)
    if res.returncode:
        sys.exit(f"the grid in {checkout} failed:\n{res.stderr[-2000:]}")
    return float(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
