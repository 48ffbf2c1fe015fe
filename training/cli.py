"""``probekit train``: fine-tune Whisper adapters on a corpus and hand the model back.

    probekit train --corpus corpus/ --method mas-lora --objective erm --out runs/mas
    probekit train --corpus corpus/ --method lora --objective fused --steps 200 --out runs/fused
    accelerate launch -m probekit train ...   # DDP, no code change
"""

from __future__ import annotations

import argparse
import json


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from probekit.corpus.readers import read_corpus
    from probekit.encoders.weights import resolve_whisper
    from training.adapters import AdapterConfig, inject_adapters, save_adapters
    from training.encoder import save_adapted_model
    from training.evaluate import transcribe, wer_report
    from training.objectives import build_objective
    from training.trainer import TrainConfig, Trainer

    corpus = read_corpus(args.corpus)
    groups = _split(args.train_groups) or corpus.groups(args.attribute)
    train_pool = corpus.filter(ids=[u.id for u in corpus if u.group(args.attribute) in groups])
    train, val = train_pool.split(args.val_fraction, stratify=args.attribute, seed=args.seed)
    folder = Path(args.model) if Path(args.model).is_dir() else resolve_whisper(args.model)
    model = WhisperForConditionalGeneration.from_pretrained(folder)
    proc = WhisperProcessor.from_pretrained(folder)
    inject_adapters(model, AdapterConfig(
        r=args.rank, alpha=args.alpha, dropout=args.dropout, targets=tuple(_split(args.targets)),
        experts=tuple(groups) if args.method == "mas-lora" else ()), seed=args.seed)
    hp = json.loads(args.objective_args) if args.objective_args else {}
    objective = build_objective(args.objective, **hp)
    cfg = TrainConfig(out_dir=args.out, steps=args.steps, batch_size=args.batch_size,
                      grad_accum=args.grad_accum, lr=args.lr, eval_every=args.eval_every,
                      attribute=args.attribute, seed=args.seed,
                      cpu=args.cpu or args.device == "cpu",
                      progress=not (args.no_progress or args.quiet))
    trainer = Trainer(model, proc, objective, train, cfg, val=val)
    model = trainer.fit()
    if trainer.acc.is_main_process:
        save_adapters(model, Path(args.out) / "final")
        save_adapted_model(model, proc, Path(args.out) / "merged",
                           info={"objective": repr(objective), "train_groups": groups})
        rep = wer_report(transcribe(model, proc, val, attribute=args.attribute), args.attribute)
        print(rep.by_group.to_string())
        print(f"validation: macro-WER {rep.macro:.1f}  overall {rep.overall:.1f}  gap "
              f"{rep.gap:.1f}  worst {rep.worst}")
        print(f"adapters: {Path(args.out) / 'final'}; merged model for probekit: "
              f"load_encoder('{Path(args.out) / 'merged'}')")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune Whisper adapters (LoRA / MAS-LoRA) with a "
                       "fairness objective", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="corpus manifest or folder")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, adapters)")
    p.add_argument("--model", default="whisper-tiny.en", help="Whisper name or local folder")
    p.add_argument("--method", choices=("lora", "mas-lora"), default="lora",
                   help="adapter type (mas-lora: one expert per training group)")
    p.add_argument("--objective", default="erm", help="erm, sd, group_dro, irm, fused")
    p.add_argument("--objective-args", default=None,
                   help='JSON hyperparameters, e.g. \'{"dro_mode": "online"}\'')
    p.add_argument("--attribute", default="accent", help="group attribute (objective, experts)")
    p.add_argument("--train-groups", default=None, help="comma-separated; default: all")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of speakers per group held out for validation")
    p.add_argument("--steps", type=int, default=100, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=8, help="utterances per step and process")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--lr", type=float, default=4e-5, help="learning rate")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank")
    p.add_argument("--alpha", type=float, default=16.0, help="LoRA scaling alpha")
    p.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout")
    p.add_argument("--targets", default="q_proj,v_proj", help="comma list of adapted modules")
    p.add_argument("--eval-every", type=int, default=0, help="validate every N steps (0: never)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, adapters and batches")
    from probekit.cliutil import add_device_argument
    add_device_argument(p, what="training", note="; cpu forces the CPU, other values leave "
                        "placement to accelerate")
    p.add_argument("--cpu", action="store_true", help="force the CPU (as --device cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (as -q)")
    p.set_defaults(func=_train)
