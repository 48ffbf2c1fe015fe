"""``probekit study``: run a study config (TOML) end to end."""

from __future__ import annotations

import argparse
import time


def _run(args: argparse.Namespace) -> int:
    from probekit.study import load_config, run_study

    overrides = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    cfg = load_config(args.config, **overrides)
    if args.encoders:
        from dataclasses import replace

        from probekit.cliutil import comma_list
        from probekit.study.config import EncoderSpec
        cfg = replace(cfg, encoders=tuple(EncoderSpec(name=n) for n in comma_list(args.encoders)))
    out = args.out or f"probekit-study-{cfg.name}"
    t0 = time.perf_counter()
    run = run_study(cfg, out, overwrite=args.overwrite, progress=not args.quiet, device=args.device)
    print(f"study {cfg.name} finished in {time.perf_counter() - t0:.0f} s")
    print(f"report: {run.report_html}\n        {run.report_md}")
    return 0


def _show(args: argparse.Namespace) -> int:
    import json

    from probekit.study import load_config
    cfg = load_config(args.config)
    print(json.dumps({"fingerprint": cfg.fingerprint(), **cfg.to_dict()}, indent=1))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="run a study config (corpus -> probes -> analysis -> report)",
                       description="Studies are TOML configs (see studies/*/config.toml).")
    s = p.add_subparsers(dest="study_command", metavar="ACTION", required=True)
    r = s.add_parser(
        "run", help="run a study end to end (resumable; cached stages are reused)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  probekit study run studies/layerwise_bias/config.toml\n"
               "  probekit study run studies/phoneme_typing/config.toml --out runs/typing\n"
               "  probekit study run studies/layerwise_bias/config.toml "
               "--encoders whisper-tiny.en,facebook/wav2vec2-base")
    r.add_argument("config", metavar="CONFIG", help="study TOML file")
    r.add_argument("--out", help="output folder (default ./probekit-study-<name>); reused when it "
                                 "holds the same config, refused when it holds another")
    r.add_argument("--overwrite", action="store_true",
                   help="reuse a study folder that holds a different config: stages whose inputs "
                        "did not change are kept, the rest recomputed (a folder probekit did not "
                        "write is always refused)")
    r.add_argument("--encoders", help="comma list replacing the config's encoders")
    from probekit.cliutil import add_device_argument
    add_device_argument(r, what="the encoders", default=None,
                        note="; default: the config's device, which is auto unless it sets one")
    r.add_argument("--seed", type=int, help="seed of the analysis resampling")
    r.set_defaults(func=_run)
    sh = s.add_parser("show", help="print the parsed config and its fingerprint",
                      epilog="example: probekit study show studies/layerwise_bias/config.toml")
    sh.add_argument("config", metavar="CONFIG", help="study TOML file")
    sh.set_defaults(func=_show)
