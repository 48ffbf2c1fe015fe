"""``probekit train``: fine-tune Whisper adapters on a corpus and hand the model back.

    probekit train --corpus corpus/ --method mas-lora --objective erm --out runs/mas
    probekit train --corpus corpus/ --method lora --objective fused --steps 200 --out runs/fused
    probekit train ... --precision bf16 --gradient-checkpointing --warmup-steps 500
    probekit train --corpus corpus/ --recipe maslora --steps 2000 --out runs/mas  # a paper's preset
    accelerate launch -m probekit train ...   # DDP, no code change

The corpus is split into train / validation / test with no speaker and no sentence shared
between any two (training.finetune.finetune_splits; one library call, training.finetune,
does the training, saving and evaluation). Validation picks the checkpoint (model
selection), so its WER is optimistic; the held-out test WER is reported separately.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.methods import DEFAULT_METHOD, available_methods, get_method


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def train_settings(args: argparse.Namespace):
    """``(TrainConfig, adapter dict, method, objective, objective_args)`` from the flags: the
    recipe's values (``--recipe``) where a flag was not given, else the library defaults."""
    from training.trainer import TrainConfig

    train = {k: v for k, v in {
        "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "warmup_steps": args.warmup_steps, "sampler": args.sampler, "select_d": args.select_d,
        "lr_schedule": args.lr_schedule, "select_metric": args.select_metric}.items()
        if v is not None}
    if args.no_importance_weights:
        train["importance_weights"] = False
    train.update(grad_accum=args.grad_accum, eval_every=args.eval_every, attribute=args.attribute,
                 seed=args.seed, cpu=args.cpu or args.device == "cpu",
                 progress=not (args.no_progress or args.quiet),
                 groups_per_batch=args.groups_per_batch, min_per_group=args.min_per_group,
                 precision=args.precision, gradient_checkpointing=args.gradient_checkpointing,
                 language=args.language, task=args.task,
                 eval_max_new_tokens=args.max_new_tokens)
    adapter = {k: v for k, v in {
        "r": args.rank, "alpha": args.alpha, "dropout": args.dropout,
        "targets": tuple(_split(args.targets)) if args.targets else None,
        "init": args.lora_init}.items() if v is not None}
    obj_args = dict(args.objective_args or {})   # parsed and checked by the parser
    if args.recipe:
        from training.recipes import RECIPES, recipe_settings

        r = RECIPES[args.recipe]
        method, objective = args.method or r["method"], args.objective or r["objective"]
        cfg, adapter, _, _, rec_args = recipe_settings(
            args.recipe, out_dir=args.out, train=train, adapter=adapter,
            objective_args=obj_args if objective == r["objective"] else None)
        obj_args = rec_args if objective == r["objective"] else obj_args
    else:
        method, objective = args.method or DEFAULT_METHOD, args.objective or "erm"
        cfg = TrainConfig(out_dir=args.out, **train)
    return cfg, adapter, method, objective, obj_args


def _train(args: argparse.Namespace) -> int:
    from probekit.corpus.readers import read_corpus
    from training.evaluate import transcribe, wer_report
    from training.finetune import finetune, finetune_splits

    from probekit.outdir import claim_output

    # A run folder probekit did not stamp (the corpus folder included) is refused; a rerun of
    # the same run resumes in it.
    claim_output(args.out, "training", command="train",
                 fingerprint={"corpus": str(Path(args.corpus).resolve()), "model": args.model,
                              "method": args.method, "objective": args.objective},
                 inputs=(args.corpus, args.model if Path(args.model).exists() else None),
                 contents=["final", "merged", "best", "checkpoint.pt", "log.jsonl", "log.csv",
                           "finetune.json", "run_settings.json", "transcripts.csv",
                           "transcripts_*.csv"])
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
    cfg, adapter, method, objective, obj_args = train_settings(args)
    res = finetune(corpus, split=split, method=method, objective=objective,
                   objective_args=obj_args, config=cfg, model=args.model,
                   max_new_tokens=args.max_new_tokens, adapter=adapter, progress=cfg.progress)
    from accelerate import PartialState

    if not PartialState().is_main_process:   # DDP: rank 0 evaluates and prints
        return 0
    model, proc = res.model, res.processor
    runs = [("test (held out)", test, None, res.transcripts)]
    if val is not None and len(val):
        runs.insert(0, ("validation (model selection)", val, None, None))
    if args.eval_d is not None:   # refused on a model without experts
        runs.append((f"test, accent known (d={args.eval_d:g})", test, args.eval_d, None))
    for name, part, d, df in runs:
        if df is None:
            df = transcribe(model, proc, part, attribute=args.attribute, known_accent_d=d,
                            language=args.language, task=args.task,
                            max_new_tokens=args.max_new_tokens)
        rep = wer_report(df, args.attribute)
        from probekit.atomic import to_csv
        to_csv(df, res.out_dir / f"transcripts_{name.split()[0].strip(',')}"
               f"{'' if d is None else f'_d{d:g}'}.csv", index=False)
        print(f"\n{name}:")
        print(rep.by_group.to_string())
        print(f"{name}: macro-WER {100 * rep.macro:.1f} %  overall {100 * rep.overall:.1f} %"
              f"  gap {100 * rep.gap:.1f} points  worst {rep.worst}")
    print(f"adapters: {res.adapters_dir}; merged model for probekit (with the ids of the "
          f"speakers and sentences it saw): load_encoder('{res.merged_dir}')")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from probekit.cliutil import (at_least_one, at_least_zero, json_object, positive,
                                  probability, seed, share)

    p = sub.add_parser("train", help="fine-tune Whisper adapters (LoRA / MAS-LoRA) with a "
                       "fairness objective", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="corpus manifest or folder")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, adapters)")
    p.add_argument("--model", default="whisper-tiny.en", help="Whisper name or local folder")
    p.add_argument("--recipe", choices=("maslora", "fusion"), default=None,
                   help="a paper's settings as a preset (training.recipes: MAS-LoRA authors' "
                   "code, or seed 000's fusion); explicit flags override it")
    p.add_argument("--method", choices=available_methods(), default=None,
                   help="adapter type: " + "; ".join(f"{m}: {get_method(m).help}" for m in
                                                     available_methods())
                   + f" (default {DEFAULT_METHOD})")
    p.add_argument("--objective", default=None,
                   help="erm, erm_balanced, sd, group_dro, irm, fused (default erm)")
    p.add_argument("--objective-args", type=json_object, default=None,
                   help='JSON hyperparameters, e.g. \'{"dro_mode": "online"}\', or the path '
                   'of a JSON file holding them')
    p.add_argument("--attribute", default="accent", help="group attribute (objective, experts)")
    p.add_argument("--train-groups", default=None, help="comma-separated; default: all")
    p.add_argument("--val-speakers", type=at_least_zero, default=1,
                   help="speakers per trained group held out for validation (model selection)")
    p.add_argument("--test-fraction", type=share, default=0.2,
                   help="share of the speakers held out (with the sentences they read) for the "
                   "reported test WER")
    p.add_argument("--steps", type=at_least_one, default=None,
                   help="optimiser steps (>= 1; default 100)")
    p.add_argument("--batch-size", type=at_least_one, default=None,
                   help="utterances per optimiser step over all processes (default 8)")
    p.add_argument("--grad-accum", type=at_least_one, default=1, help="gradient accumulation steps")
    p.add_argument("--lr", type=positive, default=None, help="learning rate (default 4e-5)")
    p.add_argument("--lr-schedule", choices=("constant", "linear"), default=None,
                   help="after the warm-up: constant (default) or linear decay to 0")
    p.add_argument("--rank", type=at_least_one, default=None, help="LoRA rank (default 16)")
    p.add_argument("--alpha", type=positive, default=None, help="LoRA scaling alpha (default 16)")
    p.add_argument("--dropout", type=probability, default=None, help="LoRA dropout (default 0.05)")
    p.add_argument("--targets", default=None,
                   help="comma list of adapted modules (default q_proj,v_proj)")
    p.add_argument("--lora-init", choices=("normal", "gaussian", "kaiming"), default=None,
                   help="lora_A init: std 1 (MAS-LoRA authors, default), std 1/r (peft "
                   "gaussian), kaiming (peft default)")
    p.add_argument("--warmup-steps", type=at_least_zero, default=None,
                   help="linear learning-rate warm-up (default 0)")
    p.add_argument("--sampler", choices=("auto", "balanced", "uniform"), default=None,
                   help="auto (default): group-balanced for DRO/IRM/fused/erm_balanced, uniform "
                   "for ERM and SD")
    p.add_argument("--no-importance-weights", action="store_true",
                   help="do not importance-weight the pooled ERM/SD terms under balanced batches")
    p.add_argument("--groups-per-batch", type=at_least_one, default=None,
                   help="groups in a balanced batch (default: all, capped at "
                   "batch-size / min-per-group)")
    p.add_argument("--min-per-group", type=at_least_one, default=2,
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
    p.add_argument("--select-metric", choices=("macro", "micro"), default=None,
                   help="validation WER that selects the checkpoint (default macro)")
    p.add_argument("--eval-d", type=float, default=None,
                   help="MAS-LoRA: also report the test WER with the accent known (1/d rule)")
    p.add_argument("--max-new-tokens", type=at_least_one, default=None,
                   help="decoding length cap (default: the model's 448 minus the prompt; "
                   "hypotheses that reach it are flagged in hit_max_tokens)")
    p.add_argument("--eval-every", type=at_least_zero, default=0, help="validate every N steps (0: never)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the split, adapters and batches")
    from probekit.cliutil import add_device_argument
    add_device_argument(p, what="training", note="; cpu forces the CPU, other values leave "
                        "placement to accelerate")
    p.add_argument("--cpu", action="store_true", help="force the CPU (as --device cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (as -q)")
    p.set_defaults(func=_train)
