"""The LDA phone grid at study size: shared statistics vs today's per-cell fits, N and 4N tokens.

The benchmark writes its own synthetic store (one float16 ``.npy`` per layer, read through a
memory map like :meth:`EmbeddingStore.read` of one shard; a minimal store double, not an
extracted store): Gaussian phone clusters (40 phones, Zipf-like frequencies) with speaker and
group offsets and unit noise, ``--layers`` layers (default 13) of ``--dim`` (768) dimensions,
40 speakers in 4 groups, utterances of 30 tokens, every sentence read once (so splits are
speaker-disjoint only, as on a corpus without shared prompts), N = ``--n`` (100,000) and 4N
tokens. The grid is the phone task's 4 single-group + ``all`` + ``all-matched`` + 4
``all-but`` sets x 5 splits = 50 LDA cells per layer, through
:func:`~probekit.probes.grid.run_grid`:

* ``shared``: ``probes=("lda",)``, the shared-statistics path (:mod:`probekit.probes.grid_stats`),
  every layer, at N and at 4N, each in a fresh process (peak RSS by ``resource.getrusage``
  ``ru_maxrss`` of that process: imports, metadata, the grid);
* ``baseline``: ``probes=(LDAProbe(),)``, the same probe as an estimator instance, which takes
  today's per-cell path (the whole layer as float32 in memory, one direct fit and one
  prediction per cell) on the same rows: at N, on the first layer and the first
  ``--baseline-seeds`` seeds (default 5: all 50 cells of the layer, nothing scaled; fewer
  seeds are scaled per cell to 50);
* equality, on the baseline's cells: direct fits (``LDAProbe().fit`` on the set's rows) vs the
  shared statistics' fits: ``max_pred_diff`` = the most test tokens of one cell whose predicted
  phone differs (fit from statistics vs direct, and streamed scoring vs ``predict``),
  ``max_coef_diff``; and the baseline's table rows vs the shared run's (``max_value_diff``).

The baseline child also times the shared path's three parts on layer 0 (statistics, fits,
scoring) and counts the multiply-adds of the shared Gram pass against those of scoring every
test token by every probe (``score_to_gram_macs``): the scoring is the same work in both
paths and bounds ``grid_speedup`` (docs/probes.md).

``grid_speedup`` = baseline seconds per layer (scaled) / shared seconds per layer at N;
``rss_growth`` = peak RSS at 4N / at N; ``sec_per_layer_4N`` = shared seconds per layer at 4N.
The machine is shared with other work: times are wall-clock of one run.
Last line: ``BENCH grid_speedup=... rss_growth=... sec_per_layer_4N=... max_pred_diff=...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GROUPS, SPEAKERS, PHONES, UTT = 4, 10, 40, 30
KINDS = ("single", "all", "all-matched", "all-but")
SEEDS = (0, 1, 2, 3, 4)


def write_store(root: Path, n: int, layers: int, dim: int, seed: int = 0) -> None:
    """Tokens of 40 speakers (10 per group), phone labels and ``layers`` float16 layers."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    spk = np.repeat(np.arange(GROUPS * SPEAKERS), int(np.ceil(n / (GROUPS * SPEAKERS))))[:n]
    freq = 1.0 / (np.arange(PHONES) + 5.0)
    phone = rng.choice(PHONES, size=n, p=freq / freq.sum())
    np.savez(root / "meta.npz", speaker=spk, phone=phone)
    for li in range(layers):
        r = np.random.default_rng([seed, li])
        cent = r.normal(0, 0.06, (PHONES, dim)).astype(np.float32)
        off = (r.normal(0, 0.03, (GROUPS * SPEAKERS, dim))
               + np.repeat(r.normal(0, 0.03, (GROUPS, dim)), SPEAKERS, axis=0)).astype(np.float32)
        out = np.lib.format.open_memmap(root / f"layer{li}.npy", mode="w+", dtype=np.float16,
                                        shape=(n, dim))
        for a in range(0, n, 50_000):
            b = min(n, a + 50_000)
            noise = r.standard_normal((b - a, dim), dtype=np.float32)
            out[a:b] = cent[phone[a:b]] + off[spk[a:b]] + noise
        out.flush()
        del out


class NpyStore:
    """The benchmark's store: ``load_task`` memory-maps ``layer<i>.npy`` (phone task only)."""

    def __init__(self, root: Path):
        import pandas as pd

        self.root = Path(root)
        m = np.load(self.root / "meta.npz")
        self.layers = sorted((p.stem for p in self.root.glob("layer*.npy")), key=lambda s: int(s[5:]))
        self.index = {"attributes": ["accent"]}
        self.fingerprint = {"encoder": "synthetic"}
        self.key = "bench"
        spk = m["speaker"]
        names = np.array([f"g{s // SPEAKERS}_s{s % SPEAKERS}" for s in range(GROUPS * SPEAKERS)])
        utt = np.concatenate([np.arange(c) // UTT for c in np.bincount(spk)])
        self.y = np.array([f"p{i}" for i in range(PHONES)])[m["phone"]]
        utt_id = np.char.add(np.char.add(names[spk], "_u"), utt.astype(str))
        self.meta = pd.DataFrame({"speaker": names[spk], "utt_id": utt_id, "sentence_id": utt_id,
                                  "group:accent": np.array([f"g{g}" for g in range(GROUPS)])[spk // SPEAKERS],
                                  "phone": self.y, "row": np.arange(len(spk))})

    def layer_name(self, layer):
        return self.layers[layer] if isinstance(layer, (int, np.integer)) else layer

    def load_task(self, layer, task, lazy=False):
        path = self.root / f"{self.layer_name(layer)}.npy"
        X = np.load(path, mmap_mode="r")
        if lazy:  # what EmbeddingStore.rows returns: the layer read in pieces
            from probekit.store.rows import LayerRows

            return LayerRows([(path, X.offset, X.shape[0])], X.shape[1], X.dtype), self.y, self.meta
        return np.asarray(X), self.y, self.meta


def _child(args) -> dict:
    """One measured run in this (fresh) process; returns seconds and peak RSS."""
    logging.disable(logging.WARNING)
    from probekit.probes.grid import run_grid
    from probekit.probes.lda import LDAProbe

    store = NpyStore(Path(args.store))
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.child == "shared":
            t0 = time.perf_counter()
            df = run_grid(store, "phone", tmp, probes=("lda",), seeds=SEEDS, train_sets=KINDS,
                          progress=False)
            out["sec"] = time.perf_counter() - t0
            out["layers"] = len(store.layers)
            out["rows"] = f"{Path(args.store).name}.rows.csv"
            df.to_csv(Path(args.store).parent / out["rows"], index=False)
        else:
            seeds = SEEDS[: args.baseline_seeds]
            t0 = time.perf_counter()
            df = run_grid(store, "phone", tmp, probes=(LDAProbe(),), seeds=seeds, train_sets=KINDS,
                          layers=[0], progress=False)
            out["sec"] = time.perf_counter() - t0
            out["cells"] = int(df.groupby(["train_set", "seed"]).ngroups)
            df.to_csv(Path(args.store).parent / "baseline.rows.csv", index=False)
            out.update(_equality(store, seeds))
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _equality(store: NpyStore, seeds) -> dict:
    """Direct fits vs shared-statistics fits on layer 0, the baseline's cells."""
    from probekit.probes.grid_scoring import stream_errors
    from probekit.probes.grid_stats import fit_sets, set_statistics
    from probekit.probes.lda import LDAProbe
    from probekit.probes.splits import content_split, equal_training_sets

    X, y, meta = store.load_task(0, "phone")
    rows = store.load_task(0, "phone", lazy=True)[0]
    splits = {s: content_split(meta, "group:accent", s) for s in seeds}
    sets = {(s, ts.name): (s, ts) for s in seeds
            for ts in equal_training_sets(meta, splits[s].train, "group:accent", s, KINDS)}
    tests = {s: sp.test for s, sp in splits.items()}
    t0 = time.perf_counter()
    stats = set_statistics(rows, y, meta, {s: sp.train for s, sp in splits.items()}, sets)
    t1 = time.perf_counter()
    models = {k: (k[0], m) for k, m in fit_sets(stats, lambda k: LDAProbe()).items()}
    t2 = time.perf_counter()
    wrong = stream_errors(rows, y, tests, models)
    t3 = time.perf_counter()
    # multiply-adds: the Gram pass (shared) and scoring every test token by every probe
    d, k = X.shape[1], len(np.unique(y))
    walked = len(np.unique(np.concatenate([ts.rows for _, ts in sets.values()])))
    gram = walked * d * (d + 1) / 2
    score = sum(len(tests[s]) * d * k for s, _ in sets.values())
    parts = {"stats_sec": t1 - t0, "fits_sec": t2 - t1, "score_sec": t3 - t2,
             "score_to_gram_macs": score / gram}
    pred_diff, coef_diff = 0, 0.0
    for k, (s, ts) in sets.items():
        direct = LDAProbe().fit(X[ts.rows], y[ts.rows])
        shared = models[k][1]
        coef_diff = max(coef_diff, float(np.abs(shared.coef_ - direct.coef_).max()))
        pred = direct.predict(X[tests[s]])
        pred_diff = max(pred_diff, int((shared.predict(X[tests[s]]) != pred).sum()),
                        int((wrong[k] != (pred != y[tests[s]])).sum()))
    return {"max_pred_diff": pred_diff, "max_coef_diff": coef_diff, **parts}


def _run(kind: str, store: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--store", str(store),
           "--baseline-seeds", str(args.baseline_seeds)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        sys.exit(f"{kind} run on {store} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--baseline-seeds", type=int, default=len(SEEDS))
    ap.add_argument("--child", choices=("shared", "baseline"), help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="probekit-grid-scale-") as tmp:
        t0 = time.perf_counter()
        for name, n in (("N", args.n), ("4N", 4 * args.n)):
            write_store(Path(tmp) / name, n, args.layers, args.dim)
        print(f"stores written ({args.layers} layers x {args.dim} dims, N={args.n}) in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        base = _run("baseline", Path(tmp) / "N", args)
        print(f"baseline (per cell, N, layer 0): {base['cells']} cells in {base['sec']:.1f} s; "
              f"peak RSS {base['maxrss_mb']:.0f} MB", flush=True)
        small = _run("shared", Path(tmp) / "N", args)
        print(f"shared N: {small['layers']} layers in {small['sec']:.1f} s; peak RSS "
              f"{small['maxrss_mb']:.0f} MB", flush=True)
        big = _run("shared", Path(tmp) / "4N", args)
        print(f"shared 4N: {big['layers']} layers in {big['sec']:.1f} s; peak RSS "
              f"{big['maxrss_mb']:.0f} MB", flush=True)
        keys = ["layer", "train_set", "seed", "test_group", "unit", "metric"]
        rows = pd.read_csv(Path(tmp) / small["rows"]).merge(
            pd.read_csv(Path(tmp) / "baseline.rows.csv"), on=keys, suffixes=("", "_cell"))
        value_diff = float(np.abs(rows["value"] - rows["value_cell"]).max())
    cells_per_layer = GROUPS * 2 + 2
    per_layer_base = base["sec"] / base["cells"] * cells_per_layer * len(SEEDS)
    per_layer_n = small["sec"] / small["layers"]
    print(f"per layer at N: baseline {per_layer_base:.1f} s (scaled from {base['cells']} of "
          f"{cells_per_layer * len(SEEDS)} cells), shared {per_layer_n:.1f} s; max_coef_diff "
          f"{base['max_coef_diff']:.2g}, max_value_diff {value_diff:.2g} over {len(rows)} rows")
    print(f"shared path on layer 0, {base['cells']} cells: statistics {base['stats_sec']:.2f} s, "
          f"fits {base['fits_sec']:.2f} s, scoring {base['score_sec']:.2f} s; scoring every test "
          f"token by every probe is {base['score_to_gram_macs']:.1f}x the multiply-adds of the "
          "shared Gram pass, and the same work in both paths")
    print(f"BENCH grid_speedup={per_layer_base / per_layer_n:.1f} "
          f"rss_growth={big['maxrss_mb'] / small['maxrss_mb']:.2f} "
          f"sec_per_layer_4N={big['sec'] / big['layers']:.1f} max_pred_diff={base['max_pred_diff']} "
          f"layers={args.layers} dim={args.dim} n={args.n} baseline_cells={base['cells']} "
          f"score_to_gram_macs={base['score_to_gram_macs']:.1f}")


if __name__ == "__main__":
    main()
