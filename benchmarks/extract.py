"""Extraction overhead, speed-up over the naive loop, memory growth and store size.

One run, one corpus (the first utterances of the synthetic ``default`` preset), one encoder
(whisper-tiny.en on the CPU), utterance + phone pooling of every layer in float16:

* **ours**: :func:`probekit.store.extract` (decode, sort into batches, encode, pool, write).
* **bare**: ``encoder.encode`` over exactly the same batches of already-decoded waveforms,
  nothing pooled or written: ``ours / bare`` is the cost of pooling and storage.
* **naive**: what most research code does: one utterance at a time through ``transformers``
  with ``output_hidden_states=True``, pooling in Python/NumPy loops, ``np.save`` per
  utterance and layer.
* **peak RSS** of ``extract`` at N and 4N utterances, each in a fresh subprocess
  (``resource.getrusage(...).ru_maxrss``).
* **store size** on disk per hour of audio per layer.
* **damage checks** (issue 21): opening the store (one ``stat`` per shard file against its
  recorded size) and ``probekit store verify`` (SHA-256 of every file), as shares of
  ``ours``; the checksums themselves are computed inside ``ours`` at commit time.

Usage: python benchmarks/extract.py [--utterances 32] [--shard-size 32] [--batch N] [--repeats 1]
(``--batch`` defaults to the encoder's batch size for the device, ``default_batch_size``: 1
for Whisper on a CPU, where batch 8 measured slower than one at a time; see docs/store.md.)
Last line: ``BENCH overhead=<ours/bare> naive_speedup=<naive/ours> rss_growth=<4N/N>
mb_per_hour_layer=<MB> verify_share=<verify/ours> open_ms=<ms>``.
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

import numpy as np


def _encoder():
    from probekit.encoders import load_encoder

    return load_encoder("whisper-tiny.en", device="cpu", sources=("local", "hf-cache", "package"))


def _corpus(n: int):
    from probekit.corpus.synthetic import build_synthetic_corpus

    corpus = build_synthetic_corpus("default", progress=False)
    if n > len(corpus):
        raise SystemExit(f"the default preset has {len(corpus)} utterances, asked for {n}")
    return corpus[:n]


def _rss_child(n: int, out: str, shard_size: int, batch: int) -> None:
    """Run in a fresh process: extract n utterances, print peak RSS (MB) and store facts."""
    from probekit.store import extract

    enc, corpus = _encoder(), _corpus(n)
    store = extract(enc, corpus, out, shard_size=shard_size, batch_size=batch, progress=False)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"rss_mb": rss_mb, "bytes": store.size_bytes(),
                      "audio_seconds": store.index["audio_seconds"],
                      "layers": len(store.layers)}))


def _naive(enc, corpus, out: Path) -> None:
    """One utterance at a time, pooling in Python loops, np.save per utterance and layer."""
    import soundfile as sf
    import torch

    model, fe = enc.model, enc.feature_extractor
    shift = enc.frame_shift
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        for u in corpus:
            wave, sr = sf.read(str(u.audio.resolve(corpus.root)), dtype="float32")
            feats = fe(wave, sampling_rate=sr, return_tensors="pt").input_features
            hs = model(feats, output_hidden_states=True).hidden_states
            n = enc.num_frames(len(wave))
            for li, h in enumerate(hs):
                naive_pool_and_save(u, li, h[0, :n].numpy(), shift, out)


def naive_pool_and_save(u, li: int, frames: np.ndarray, shift: float, out: Path) -> None:
    """The naive loop's pooling of one layer of one utterance: the utterance mean and each
    phone's mean frame in Python loops, one ``np.save`` each (shared with extract_ssl.py)."""
    n = len(frames)
    phones = []
    for p in u.phones:
        idx = [k for k in range(n) if k * shift < p.end and (k + 1) * shift > p.start]
        if not idx:
            idx = [min(n - 1, int((p.start + p.end) / 2 / shift))]
        phones.append(np.mean([frames[k] for k in idx], axis=0))
    np.save(out / f"{u.id}_layer{li}_utt.npy", frames.mean(axis=0).astype(np.float16))
    np.save(out / f"{u.id}_layer{li}_phones.npy", np.array(phones, np.float16))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utterances", type=int, default=32, help="N (RSS is also measured at 4N)")
    ap.add_argument("--shard-size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=None,
                    help="utterances per encoder call (default: the encoder's choice for the "
                         "device, encoder.default_batch_size)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="interleaved bare/ours/naive runs; the fastest of each is kept")
    ap.add_argument("--rss-child", nargs=2, metavar=("N", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        _rss_child(int(args.rss_child[0]), args.rss_child[1], args.shard_size, args.batch)
        return

    import torch

    from probekit.store import extract
    from probekit.store.shard_writer import length_batches

    n = args.utterances
    enc, corpus = _encoder(), _corpus(4 * n)  # builds (or reuses) the cached corpus once
    if args.batch is None:
        args.batch = enc.default_batch_size
    corpus = corpus[:n]
    audio = [u.load_audio(corpus.root) for u in corpus]
    secs = [len(w) / sr for w, sr in audio]
    # The exact batches extract() forms: per shard, sorted by length.
    batches = []
    for lo in range(0, n, args.shard_size):
        idx = list(range(lo, min(n, lo + args.shard_size)))
        batches += [[idx[i] for i in b] for b in length_batches([secs[i] for i in idx], args.batch, None)]

    def bare() -> None:
        for b in batches:
            enc.encode([audio[i][0] for i in b], sample_rate=[audio[i][1] for i in b])

    tmp = Path(tempfile.mkdtemp(prefix="probekit-bench-"))
    enc.encode([audio[0][0]], sample_rate=audio[0][1])  # warm-up (allocator, threads)
    runs = {"bare": lambda r: bare(),
            "ours": lambda r: extract(enc, corpus, tmp / f"ours{r}", shard_size=args.shard_size,
                                      batch_size=args.batch, progress=False),
            "naive": lambda r: _naive(enc, corpus, tmp / f"naive{r}")}
    # Interleaved repeats, the fastest of each kept: a shared machine's load comes and goes.
    best = {k: float("inf") for k in runs}
    for r in range(args.repeats):
        for k, fn in runs.items():
            t0 = time.perf_counter(); fn(r); best[k] = min(best[k], time.perf_counter() - t0)
    t_bare, t_ours, t_naive = best["bare"], best["ours"], best["naive"]
    from probekit.store import EmbeddingStore
    from probekit.store.integrity import damaged_shards

    t0 = time.perf_counter(); store = EmbeddingStore.open(tmp / "ours0")
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert not damaged_shards(store.root, [s["name"] for s in store.index["shards"]], store.index)
    t_verify = time.perf_counter() - t0

    rss = {}
    for k in (n, 4 * n):
        run = subprocess.run([sys.executable, __file__, "--shard-size", str(args.shard_size),
                              "--batch", str(args.batch), "--rss-child", str(k),
                              str(tmp / f"rss{k}")], capture_output=True, text=True, check=True)
        rss[k] = json.loads(run.stdout.strip().splitlines()[-1])
    big = rss[4 * n]
    mb_hour_layer = big["bytes"] / 1e6 / (big["audio_seconds"] / 3600) / big["layers"]

    audio_s = sum(secs)
    print(f"encoder=whisper-tiny.en utterances={n} audio={audio_s:.1f}s batch={args.batch} "
          f"batches={len(batches)} threads={torch.get_num_threads()} repeats={args.repeats}")
    print(f"bare encode  : {t_bare:7.2f} s  {n / t_bare:6.2f} utt/s")
    print(f"probekit     : {t_ours:7.2f} s  {n / t_ours:6.2f} utt/s  (decode+encode+pool+store)")
    print(f"naive loop   : {t_naive:7.2f} s  {n / t_naive:6.2f} utt/s  (1 utt/forward, Python "
          f"pooling, np.save per utterance)")
    print(f"peak RSS     : {rss[n]['rss_mb']:.0f} MB at {n} utt, {big['rss_mb']:.0f} MB at "
          f"{4 * n} utt")
    print(f"store        : {big['bytes'] / 1e6:.2f} MB for {big['audio_seconds'] / 60:.1f} min "
          f"of audio, {big['layers']} layers (utterance+phone, float16)")
    print(f"damage checks: open {t_open * 1e3:.1f} ms (sizes), verify {t_verify:.3f} s "
          f"(checksums) = {t_verify / t_ours:.4f} of extraction")
    print(f"BENCH overhead={t_ours / t_bare:.3f} naive_speedup={t_naive / t_ours:.2f} "
          f"rss_growth={big['rss_mb'] / rss[n]['rss_mb']:.3f} "
          f"mb_per_hour_layer={mb_hour_layer:.2f} verify_share={t_verify / t_ours:.4f} "
          f"open_ms={t_open * 1e3:.1f}")


if __name__ == "__main__":
    main()
