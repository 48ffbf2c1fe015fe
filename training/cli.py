"""``probekit train``: fine-tune Whisper adapters on a corpus and hand the model back.

    probekit train --corpus corpus/ --method mas-lora --objective erm --out runs/mas
    probekit train --corpus corpus/ --method lora --objective fused --steps 200 --out runs/fused
    probekit train ... --precision bf16 --gradient-checkpointing --warmup-steps 500
    accelerate launch -m probekit train ...   # DDP, no code change

The corpus is split into train / validation / test with no speaker and no sentence shared
between any two (training.finetune.finetune_splits; one library call, training.finetune,
does the training, saving and evaluation). Validation picks the checkpoint (model
selection), so its WER is optimistic; the held-out test WER is reported separately.
"""

from __future__ import annotations

import argparse
import json


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from probekit.corpus.readers import read_corpus
    from training.evaluate import transcribe, wer_report
    from training.finetune import finetune, finetune_splits
    from training.trainer import TrainConfig

    from probekit.outdir import claim_output

    # A run folder probekit did not stamp (the corpus folder included) is refused; a rerun of
    # the same run resumes in it.
    claim_output(args.out, "training", command="train",
                 fingerprint={"corpus": str(Path(args.corpus).resolve()), "model": args.model,
                              "method": args.method, "objective": args.objective},
                 inputs=(args.corpus, args.model if Path(args.model).exists() else None),
                 contents=["final", "merged", "best", "checkpoint.pt", "log.jsonl", "log.csv",
                           "finetune.json", "transcripts.csv", "transcripts_*.csv"])
    corpus = read_corpus(args.corpus)
    split = finetune_splits(corpus, attribute=args.attribute,
                            train_groups=_split(args.train_groups),
                            test_speakers=args.test_fraction, val_speakers=args.val_speakers,
                            seed=args.seed)
    train, val, test = split.train, split.val, split.test
    print(f"split: {len(train)} train / {len(val) if val is not None else 0} validation / "
          f"{len(test)} test utterances (speaker-"
          f"{'and sentence-' if split.sentence_disjoint else ''}disjoint)"
          + (f"; {split.note}" if split.note else ""))
    cfg = TrainConfig(out_dir=args.out, steps=args.steps, batch_size=args.batch_size,
                      grad_accum=args.grad_accum, lr=args.lr, eval_every=args.eval_every,
                      attribute=args.attribute, seed=args.seed,
                      cpu=args.cpu or args.device == "cpu",
                      progress=not (args.no_progress or args.quiet), warmup_steps=args.warmup_steps,
                      groups_per_batch=args.groups_per_batch, min_per_group=args.min_per_group,
                      sampler=args.sampler, precision=args.precision,
                      gradient_checkpointing=args.gradient_checkpointing,
                      language=args.language, task=args.task, select_d=args.select_d)
    res = finetune(corpus, split=split, method=args.method, objective=args.objective,
                   objective_args=json.loads(args.objective_args) if args.objective_args else {},
                   config=cfg, model=args.model, max_new_tokens=args.max_new_tokens,
                   adapter=dict(r=args.rank, alpha=args.alpha, dropout=args.dropout,
                                targets=tuple(_split(args.targets)), init=args.lora_init),
                   progress=cfg.progress)
    model, proc = res.model, res.processor
    runs = [("test (held out)", test, None, res.transcripts)]
    if val is not None and len(val):
        runs.insert(0, ("validation (model selection)", val, None, None))
    if args.method == "mas-lora" and args.eval_d is not None:
        runs.append((f"test, accent known (d={args.eval_d:g})", test, args.eval_d, None))
    for name, part, d, df in runs:
        if df is None:
            df = transcribe(model, proc, part, attribute=args.attribute, known_accent_d=d,
                            language=args.language, task=args.task,
                            max_new_tokens=args.max_new_tokens)
        rep = wer_report(df, args.attribute)
        df.to_csv(Path(args.out) / f"transcripts_{name.split()[0].strip(',')}"
                  f"{'' if d is None else f'_d{d:g}'}.csv", index=False)
        print(f"\n{name}:")
        print(rep.by_group.to_string())
        print(f"{name}: macro-WER {rep.macro:.1f}  overall {rep.overall:.1f}  gap "
              f"{rep.gap:.1f}  worst {rep.worst}")
    print(f"adapters: {res.adapters_dir}; merged model for probekit (with the ids of the "
          f"speakers and sentences it saw): load_encoder('{res.merged_dir}')")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from probekit.cliutil import at_least_one, share

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
    p.add_argument("--val-speakers", type=int, default=1,
                   help="speakers per trained group held out for validation (model selection)")
    p.add_argument("--test-fraction", type=share, default=0.2,
                   help="share of the speakers held out (with the sentences they read) for the "
                   "reported test WER")
    p.add_argument("--steps", type=at_least_one, default=100, help="optimiser steps (>= 1)")
    p.add_argument("--batch-size", type=int, default=8, help="utterances per step and process")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--lr", type=float, default=4e-5, help="learning rate")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank")
    p.add_argument("--alpha", type=float, default=16.0, help="LoRA scaling alpha")
    p.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout")
    p.add_argument("--targets", default="q_proj,v_proj", help="comma list of adapted modules")
    p.add_argument("--lora-init", choices=("normal", "gaussian", "kaiming"), default="normal",
                   help="lora_A init: std 1 (MAS-LoRA authors), std 1/r (peft gaussian), "
                   "kaiming (peft default)")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear learning-rate warm-up")
    p.add_argument("--sampler", choices=("auto", "balanced", "uniform"), default="auto",
                   help="auto: group-balanced for DRO/IRM/fused, uniform for ERM and SD")
    p.add_argument("--groups-per-batch", type=int, default=None,
                   help="groups in a balanced batch (default: all, capped at "
                   "batch-size / min-per-group)")
    p.add_argument("--min-per-group", type=int, default=2,
                   help="utterances per group a balanced batch must give DRO/IRM")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="mixed precision (adapters and optimizer state stay fp32)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations in the backward pass (less memory)")
    p.add_argument("--language", default="english",
                   help="forced language of multilingual checkpoints (labels and decoding)")
    p.add_argument("--task", default="transcribe", choices=("transcribe", "translate"),
                   help="forced task of multilingual checkpoints")
    p.add_argument("--select-d", type=float, default=None,
                   help="MAS-LoRA: select the checkpoint on the accent-known mixture with this "
                   "d (1: own expert, as the authors); default: the uniform mixture")
    p.add_argument("--eval-d", type=float, default=None,
                   help="MAS-LoRA: also report the test WER with the accent known (1/d rule)")
    p.add_argument("--max-new-tokens", type=int, default=96, help="decoding length cap")
    p.add_argument("--eval-every", type=int, default=0, help="validate every N steps (0: never)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, adapters and batches")
    from probekit.cliutil import add_device_argument
    add_device_argument(p, what="training", note="; cpu forces the CPU, other values leave "
                        "placement to accelerate")
    p.add_argument("--cpu", action="store_true", help="force the CPU (as --device cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (as -q)")
    p.set_defaults(func=_train)
