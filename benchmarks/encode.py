"""Encoder overhead: probekit's ``Encoder.encode`` vs a bare transformers forward.

Both sides start from the same float32 16 kHz waveforms in the same batches and include
Whisper's log-mel features; the baseline calls ``model(input_features)`` and keeps only the
last hidden state, ours returns every layer trimmed to the valid lengths on the CPU.
Timings are the median of several repeats measured in this one run.

Usage: python benchmarks/encode.py [--encoder whisper-tiny.en] [--utterances 32] [--batch 8]
Last line: ``BENCH overhead=<ours / bare> ...``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="whisper-tiny.en")
    ap.add_argument("--utterances", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from probekit.encoders import load_encoder

    torch.manual_seed(0)
    enc = load_encoder(args.encoder, device="cpu", sources=("local", "hf-cache", "package"))
    rng = np.random.default_rng(0)
    secs = rng.uniform(2.0, 6.0, args.utterances)
    waves = [(0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32) for s in secs]
    batches = [waves[i:i + args.batch] for i in range(0, len(waves), args.batch)]
    audio_seconds = float(secs.sum())

    def ours() -> None:
        for b in batches:
            enc.encode(b)

    def bare() -> None:
        with torch.inference_mode():
            for b in batches:
                feats = enc.feature_extractor(b, sampling_rate=16000, return_tensors="pt",
                                              padding="max_length").input_features
                enc.model(feats).last_hidden_state

    bare()  # warm-up (allocator, threads)
    t_ours, t_bare = [], []
    for _ in range(args.repeats):  # interleaved so drift hits both alike
        t0 = time.perf_counter(); bare(); t_bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); ours(); t_ours.append(time.perf_counter() - t0)
    mo, mb = statistics.median(t_ours), statistics.median(t_bare)
    print(f"encoder={args.encoder} utterances={args.utterances} audio={audio_seconds:.1f}s "
          f"threads={torch.get_num_threads()}")
    print(f"bare forward : {mb:.2f} s  {args.utterances / mb:.2f} utt/s  RTF {mb / audio_seconds:.4f}")
    print(f"probekit     : {mo:.2f} s  {args.utterances / mo:.2f} utt/s  RTF {mo / audio_seconds:.4f}")
    print(f"BENCH overhead={mo / mb:.3f} utt_per_s={args.utterances / mo:.2f} "
          f"rtf={mo / audio_seconds:.4f} bare_utt_per_s={args.utterances / mb:.2f}")


if __name__ == "__main__":
    main()
