"""``probekit encoders ...``: list encoder families and inspect a model's layers."""

from __future__ import annotations

import argparse

import numpy as np


def _list(args: argparse.Namespace) -> int:
    from probekit.encoders import available_encoders
    from probekit.encoders.registry import family_options

    for family, names in available_encoders().items():
        print(f"{family}: {', '.join(names) if names else '(any hub id or local folder)'}")
        for key, opt in family_options(family).items():
            print(f"  option {key} ({opt.describe()}): {opt.help}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from probekit.encoders import load_encoder

    enc = load_encoder(args.name, device=args.device)
    print(enc)
    out = enc.encode([np.zeros(int(enc.sample_rate * args.seconds), dtype=np.float32)])
    for name, h in zip(out.layer_names, out.hidden_states):
        print(f"  {name:8s} frames={int(out.lengths[0])} hidden={h.shape[-1]}")
    print(f"fingerprint={enc.fingerprint}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encoders", help="list encoders, inspect a model's layers")
    esub = p.add_subparsers(dest="encoders_command", metavar="ACTION", required=True)
    lp = esub.add_parser("list", help="registered families and known model names")
    lp.set_defaults(func=_list)
    ip = esub.add_parser("info", help="load a model and print its layers",
                         epilog="example: probekit encoders info whisper-tiny.en")
    ip.add_argument("name", help="known name, hub id or local folder")
    ip.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ip.add_argument("--seconds", type=float, default=1.0, help="length of the probe input")
    ip.set_defaults(func=_info)
