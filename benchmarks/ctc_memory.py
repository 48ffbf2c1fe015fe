"""Peak memory of a CTC probe grid at N and 4N utterances (issue 23 item 2).

A synthetic ``frames`` store (:func:`probekit.testing.synthetic_store.write_frames_store`)
the size of the demo's (N = 500 utterances of about 125 frames, 384 dimensions, float16,
shards of 64 utterances as ``extract`` writes them), and one 4x larger. On each, in a fresh
subprocess, peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which
counts every page the process touched: torch, numpy, a memory map's pages alike):

* **streamed**: :func:`probekit.probes.grid.run_grid` on the ``asr`` task (one layer, one
  seed, ``all``, ``max_epochs`` epochs): the CTC probe reads batches of utterances from the
  shard files (:class:`~probekit.store.rows.FrameSequences`).
* **materialised** (the baseline, the former path, same run): the layer read whole
  (``EmbeddingStore.read``: several shards concatenated), cut into per-utterance views, and
  the same probe fitted and scored on that list.

``idle`` is the peak of a process that only imports probekit, torch and the grid: the
part of the peak no data causes.

Usage: python benchmarks/ctc_memory.py [--utterances 500] [--epochs 2]
Last line: ``BENCH peak_ratio_4x=<streamed 4N/N> baseline_ratio_4x=<materialised 4N/N>
net_ratio_4x=... baseline_net_ratio_4x=...`` (the same ratios of the peak above ``idle``),
``peak_mb_4n=... baseline_peak_mb_4n=... idle_mb=... frames_mb_4n=... sec_4n=...``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = dict(hidden=384, frames_per_char=9, shard_size=64, dtype="float16")


def _child(mode: str, store_dir: str, texts_path: str, epochs: int) -> None:
    import logging

    import numpy as np

    from probekit.probes.ctc import CTCProbe
    from probekit.probes.grid import run_grid
    from probekit.store import EmbeddingStore

    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    if mode != "idle":
        store = EmbeddingStore.open(store_dir)
        texts = json.loads(Path(texts_path).read_text())
        if mode == "streamed":
            with tempfile.TemporaryDirectory() as tmp:
                run_grid(store, "asr", tmp, corpus=texts, seeds=(0,), max_epochs=epochs,
                         progress=False)
        else:  # the former path: the whole layer in memory, views per utterance
            X, meta = store.read(0, "frames")
            seqs = [X[o:o + n] for o, n in zip(meta["offset"], meta["n_frames"])]
            y = [texts[u] for u in meta["utt_id"]]
            half = len(seqs) // 2
            est = CTCProbe(max_epochs=epochs, random_state=0).fit(seqs[:half], y[:half])
            est.predict(seqs[half:])
            del X, seqs
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"peak_mb": peak_kb / 1024, "sec": time.perf_counter() - t0}))


def _run(mode, store_dir="", texts="", epochs=2):
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(store_dir), str(texts),
                          str(epochs)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--utterances", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.child[2], int(args.child[3]))
        return
    from probekit.testing.synthetic_store import write_frames_store

    res = {"idle": _run("idle")}
    with tempfile.TemporaryDirectory() as tmp:
        for tag, n in (("N", args.utterances), ("4N", 4 * args.utterances)):
            store, texts = write_frames_store(Path(tmp) / tag, n_utterances=n, **SHAPE)
            tp = Path(tmp) / f"{tag}.json"
            tp.write_text(json.dumps(texts))
            mb = store.index["rows"]["frames"] * SHAPE["hidden"] * 2 / 2**20
            for mode in ("streamed", "materialised"):
                r = _run(mode, store.root, tp, args.epochs)
                res[f"{mode}_{tag}"] = r
                print(f"{tag:>2} ({n} utterances, {store.index['rows']['frames']} frames, "
                      f"{mb:.0f} MB of frames): {mode:<12} peak {r['peak_mb']:.0f} MB "
                      f"in {r['sec']:.1f} s", flush=True)
            res[f"frames_mb_{tag}"] = mb
    idle = res["idle"]["peak_mb"]
    print(f"idle (imports only): peak {idle:.0f} MB")
    s, m = "streamed", "materialised"
    keys = {"peak_ratio_4x": res[f"{s}_4N"]["peak_mb"] / res[f"{s}_N"]["peak_mb"],
            "baseline_ratio_4x": res[f"{m}_4N"]["peak_mb"] / res[f"{m}_N"]["peak_mb"],
            "net_ratio_4x": (res[f"{s}_4N"]["peak_mb"] - idle) / (res[f"{s}_N"]["peak_mb"] - idle),
            "baseline_net_ratio_4x": ((res[f"{m}_4N"]["peak_mb"] - idle)
                                      / (res[f"{m}_N"]["peak_mb"] - idle)),
            "peak_mb_4n": res[f"{s}_4N"]["peak_mb"], "baseline_peak_mb_4n": res[f"{m}_4N"]["peak_mb"],
            "idle_mb": idle, "frames_mb_4n": res["frames_mb_4N"], "sec_4n": res[f"{s}_4N"]["sec"]}
    print("BENCH " + " ".join(f"{k}={v:.3g}" for k, v in keys.items()))


if __name__ == "__main__":
    main()
