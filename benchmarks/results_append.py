"""Cost of a safe append: ``ResultsTable.append`` (writer lock + the check that no cell is in
the table already, reading only parts it has not read) vs the append without them (check the
frame, write a temporary file, rename), as it was before the lock.

Both sides write ``--parts`` parts of one grid cell-batch each (``--rows`` rows, the size of a
(layer, seed) unit of a phone grid) into a fresh folder; ours also keeps ``done_cells`` up to
date before each part, as the grid does. Timings are the median of several repeats measured
in this one run.

Usage: python benchmarks/results_append.py [--parts 200] [--rows 150] [--repeats 3]
Last line: ``BENCH append_overhead=<ours / bare> ...``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _part(i: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(i)
    n_cells, per_cell = 10, max(rows // 10, 1)
    return pd.DataFrame({
        "encoder": "enc", "store": "abc", "layer": f"block{i}", "layer_index": i, "task": "phone",
        "probe": "lda", "group_attribute": "accent",
        "train_set": np.repeat([f"set{c}" for c in range(n_cells)], per_cell), "seed": 0,
        "test_group": "g1", "unit": np.tile([f"s{u}" for u in range(per_cell)], n_cells),
        "metric": "error", "value": rng.uniform(0, 1, n_cells * per_cell), "n": 20,
        "n_train": 400, "n_train_speakers": 8})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", type=int, default=200)
    ap.add_argument("--rows", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from probekit.probes.results import ResultsTable, validate_results

    parts = [validate_results(_part(i, args.rows)) for i in range(args.parts)]

    def bare(root: Path) -> None:  # what append did before the lock: check, write, rename
        root.mkdir()
        for k, df in enumerate(parts):
            validate_results(df)
            df.to_csv(root / f".part-{k:06d}.tmp", index=False)
            os.replace(root / f".part-{k:06d}.tmp", root / f"part-{k:06d}.csv")

    def ours(root: Path) -> None:
        table = ResultsTable(root)
        for df in parts:
            table.done_cells()
            table.append(df, done="skip")

    times = {"bare": [], "ours": []}
    for r in range(args.repeats):
        for name, fn in (("bare", bare), ("ours", ours)):
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                fn(Path(tmp) / "res")
                times[name].append(time.perf_counter() - t)
                if name == "ours":
                    assert len(ResultsTable(Path(tmp) / "res").load()) == args.parts * len(parts[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.parts} parts of {len(parts[0])} rows: bare {med['bare']:.3f} s, "
          f"locked and checked {med['ours']:.3f} s "
          f"({1e3 * (med['ours'] - med['bare']) / args.parts:.2f} ms more per part)")
    print(f"BENCH append_overhead={med['ours'] / med['bare']:.2f} parts={args.parts} "
          f"rows={len(parts[0])} bare_s={med['bare']:.3f} ours_s={med['ours']:.3f}")


if __name__ == "__main__":
    main()
