"""Extraction with self-supervised encoders: overhead over the bare forward, and batching.

Randomly initialised models of two published sizes (no download; random weights cost the
same as trained ones): **wav2vec2-base** (``Wav2Vec2Config()``: 7 conv layers of 512, 12
blocks of 768) and **WavLM-base-plus** (``WavLMConfig()``: the same geometry plus gated
relative position bias). The corpus: utterances of 2 to 12 s (evenly spread, shuffled), WAV
files on disk, a phone every 100 ms, utterance + phone pooling of every layer in float16.
For each size, in one process, on one device:

* **bare**: the plain ``transformers`` forward, one utterance per call, on already decoded
  and normalised waveforms, nothing pooled or kept: the floor.
* **ours**: :func:`probekit.store.extract` at the encoder's default batch size for the device
  (``encoder.default_batch_size``), at batch 1 and at ``--batch`` (length-sorted batches of
  a shard; a batch size equal to the default is measured once).
* **naive**: what most research code does: the HF feature extractor and forward one utterance
  at a time, pooling in Python loops, ``np.save`` per utterance and layer.

``overhead = ours(default) / bare`` (the cost of decoding, pooling and writing), and
``batched_speedup = ours(batch 1) / ours(default)``: 1.000 exactly when the default *is* 1
(the CPU), the point of the default being that probekit is never slower than batch 1.
``batchN_speedup = ours(batch 1) / ours(batch N)`` says what batching N would give here.

The issue's 64 utterances (the default) take ~25-40 s per pass on 2 idle cores (~5 min for
both sizes), far longer on loaded ones (``--utterances 8`` for a quick look). Usage:
``python benchmarks/extract_ssl.py [--utterances 64] [--batch 8] [--device cpu] [--repeats 1]
[--sizes wav2vec2-base,wavlm-base-plus]``. Last line: ``BENCH overhead=<max over sizes>
batched_speedup=<min over sizes> ...`` followed by the same keys per size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from extract import naive_pool_and_save  # benchmarks/ is on sys.path when run as a script

SIZES = {"wav2vec2-base": ("Wav2Vec2Config", "Wav2Vec2Model"),
         "wavlm-base-plus": ("WavLMConfig", "WavLMModel")}
SR = 16000


def _encoder(size: str, device: str):
    import torch
    import transformers

    from probekit.encoders.hf_ssl import SSLEncoder

    cfg_name, model_name = SIZES[size]
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(getattr(transformers, cfg_name)())
    return SSLEncoder(f"random-{size}", model, device=device)


def _corpus(n: int, folder: Path):
    """n utterances of 2..12 s (noise + tones) written as WAV, a phone every 100 ms."""
    import soundfile as sf

    from probekit.corpus.model import AudioSource, Corpus, Segment, Utterance

    rng = np.random.default_rng(0)
    secs = rng.permutation(np.linspace(2.0, 12.0, n))
    folder.mkdir(parents=True, exist_ok=True)
    utts = []
    for i, s in enumerate(secs):
        t = np.arange(int(s * SR)) / SR
        wave = (0.2 * np.sin(2 * np.pi * (120 + 10 * i) * t)
                + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
        sf.write(folder / f"u{i:03d}.wav", wave, SR)
        n_ph = int(s * 10)
        phones = tuple(Segment(f"p{k % 7}", k / 10, (k + 1) / 10) for k in range(n_ph))
        utts.append(Utterance(id=f"u{i:03d}", audio=AudioSource(path=f"u{i:03d}.wav"),
                              speaker=f"s{i % 4}", groups={"g": f"g{i % 2}"}, phones=phones))
    return Corpus(utts, root=folder, name="ssl-bench")


def _bare(enc, waves) -> None:
    import torch

    with torch.inference_mode():
        for w in waves:
            x = torch.from_numpy(enc._normalize(w)).to(enc.device)[None]
            enc.model(x, output_hidden_states=True)


def _naive(enc, corpus, out: Path) -> None:
    """One utterance at a time, pooling in Python loops, np.save per utterance and layer."""
    import soundfile as sf
    import torch
    from transformers import Wav2Vec2FeatureExtractor

    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, do_normalize=True)
    shift = enc.frame_shift
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        for u in corpus:
            wave, sr = sf.read(str(u.audio.resolve(corpus.root)), dtype="float32")
            x = fe(wave, sampling_rate=sr, return_tensors="pt").input_values.to(enc.device)
            hs = enc.model(x, output_hidden_states=True).hidden_states
            for li, h in enumerate(hs):
                naive_pool_and_save(u, li, h[0].cpu().numpy(), shift, out)


def _sync(enc) -> None:
    import torch

    if enc.device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, enc) -> float:
    _sync(enc)
    t0 = time.perf_counter()
    fn()
    _sync(enc)
    return time.perf_counter() - t0


def run_size(size: str, args, tmp: Path) -> dict:
    from probekit.store import extract

    enc = _encoder(size, args.device)
    corpus = _corpus(args.utterances, tmp / "corpus")
    waves = [u.load_audio(corpus.root)[0] for u in corpus]
    enc.encode([max(waves, key=len)])  # warm-up at the longest input (allocator, threads)
    default = enc.default_batch_size
    runs = {"bare": lambda r: _bare(enc, waves),
            "naive": lambda r: _naive(enc, corpus, tmp / f"{size}-naive{r}")}
    for bs in dict.fromkeys([default, 1, args.batch]):
        runs[bs] = lambda r, bs=bs: extract(enc, corpus, tmp / f"{size}-b{bs}-{r}",
                                            batch_size=bs, progress=False)
    # Interleaved repeats, the fastest of each kept: a shared machine's load comes and goes.
    t = {k: float("inf") for k in runs}
    for r in range(args.repeats):
        for k, fn in runs.items():
            t[k] = min(t[k], _timed(lambda: fn(r), enc))
    audio = sum(len(w) for w in waves) / SR
    print(f"{size}: {args.utterances} utt, {audio:.0f} s audio, device {enc.device}, "
          f"default batch {default}")
    print(f"  bare forward : {t['bare']:8.2f} s")
    for bs in dict.fromkeys([default, 1, args.batch]):
        print(f"  probekit b{bs:<3}: {t[bs]:8.2f} s")
    print(f"  naive loop   : {t['naive']:8.2f} s")
    return {"overhead": t[default] / t["bare"], "batched_speedup": t[1] / t[default],
            f"batch{args.batch}_speedup": t[1] / t[args.batch],
            "naive_speedup": t["naive"] / t[default], "default_batch": default,
            "rt_factor": audio / t[default]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utterances", type=int, default=64, help="utterances of 2-12 s")
    ap.add_argument("--batch", type=int, default=8, help="the batched run's batch size")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved; the fastest is kept")
    ap.add_argument("--sizes", default=",".join(SIZES))
    args = ap.parse_args()

    import torch

    tmp = Path(tempfile.mkdtemp(prefix="probekit-bench-ssl-"))
    res = {s: run_size(s, args, tmp) for s in args.sizes.split(",")}
    print(f"threads={torch.get_num_threads()} utterances={args.utterances} device={args.device} "
          f"repeats={args.repeats}")
    per = " ".join(f"{k}_{s.replace('-', '_')}={v:.3f}" if isinstance(v, float) else
                   f"{k}_{s.replace('-', '_')}={v}" for s, r in res.items() for k, v in r.items())
    print(f"BENCH overhead={max(r['overhead'] for r in res.values()):.3f} "
          f"batched_speedup={min(r['batched_speedup'] for r in res.values()):.3f} "
          f"utterances={args.utterances} device={args.device} {per}")


if __name__ == "__main__":
    main()
