"""Probe grid speed: closed-form and torch logistic probes vs a loop of sklearn fits.

One run on the default synthetic corpus's store for whisper-tiny.en (built and cached on
first use: corpus ~10 s, extraction ~3 min on 2 cores): phone task, every layer x every
single-group training set x 3 seeds, the same cells and rows for all three probes:

* ``closed_form``: probekit's ``LDAProbe`` (shared covariance, OAS shrinkage, solved from
  sufficient statistics);
* ``logistic``: probekit's ``TorchLogisticProbe`` (L2 C=1, full-batch L-BFGS, standardised);
* ``sklearn``: ``StandardScaler`` + ``LogisticRegression(C=1, lbfgs)``, the same model as ours.

Accuracy is the mean over cells of the cell's accuracy on all held-out test phones.
Last line: ``BENCH closed_form_speedup=... logistic_speedup=... acc_sklearn=... acc_closed_form=...
acc_logistic=...``. Results on synthetic speech: a demonstration of speed, not a finding.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def default_store(cache: Path | None = None):
    """The default synthetic corpus through whisper-tiny.en, cached under the probekit cache."""
    from probekit.cache import cache_root
    from probekit.corpus.synthetic import build_synthetic_corpus
    from probekit.encoders import load_encoder
    from probekit.store import EmbeddingStore, extract

    corpus = build_synthetic_corpus("default")
    out = (cache or cache_root()) / "bench" / "store-default-whisper-tiny.en"
    try:
        return EmbeddingStore.open(out)
    except Exception:  # not built yet (or incomplete): extraction resumes/creates it
        enc = load_encoder("whisper-tiny.en", device="cpu", sources=("local", "hf-cache", "package"))
        return extract(enc, corpus, out, poolings=("utterance", "phone"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", help="use this store instead of the cached default one")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from probekit.probes.grid import run_grid
    from probekit.store import EmbeddingStore

    store = EmbeddingStore.open(args.store) if args.store else default_store()
    seeds = [int(s) for s in args.seeds.split(",")]
    probes = {
        "sklearn": make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=100)),
        "closed_form": "lda",
        "logistic": "logistic",
    }
    times, accs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, probe in probes.items():
            t0 = time.perf_counter()
            df = run_grid(store, "phone", Path(tmp) / name, probes=(probe,), seeds=seeds,
                          train_sets=("single",), progress=False)
            times[name] = time.perf_counter() - t0
            cells = df[df.unit == "all"].groupby(["layer", "train_set", "seed"])
            accs[name] = float(np.mean([1 - (d.value * d.n).sum() / d.n.sum() for _, d in cells]))
            print(f"{name:12s} {times[name]:8.2f} s  {cells.ngroups} cells  mean accuracy {accs[name]:.4f}")
    cf = times["sklearn"] / times["closed_form"]
    lg = times["sklearn"] / times["logistic"]
    print(f"store: {store}")
    print(f"BENCH closed_form_speedup={cf:.1f} logistic_speedup={lg:.1f} acc_sklearn={accs['sklearn']:.4f} "
          f"acc_closed_form={accs['closed_form']:.4f} acc_logistic={accs['logistic']:.4f}")


if __name__ == "__main__":
    main()
