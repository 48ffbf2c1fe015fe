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
    from probekit.cliutil import comma_list

    return None if value is None else comma_list(value)


#: ``TrainConfig`` fields a ``--recipe`` fills when the flag is not given (their parser default
#: is ``None`` and their help names the library default).
_RECIPE_FIELDS = ("steps", "batch_size", "lr", "warmup_steps", "sampler", "select_d",
                  "lr_schedule", "select_metric")
#: ``TrainConfig`` fields set from a flag of the same name whatever the recipe.
_FLAG_FIELDS = ("grad_accum", "eval_every", "attribute", "seed", "groups_per_batch",
                "min_per_group", "precision", "gradient_checkpointing", "language",
                "decode_task", "test_speakers", "val_speakers")


def train_settings(args: argparse.Namespace):
    """``(TrainConfig, adapter dict, method, objective, objective_args)`` from the flags: the
    recipe's values (``--recipe``) where a flag was not given, else the library defaults."""
    from training.config import TrainConfig

    train = {k: getattr(args, k) for k in _RECIPE_FIELDS if getattr(args, k) is not None}
    if args.no_importance_weights:
        train["importance_weights"] = False
    train.update({k: getattr(args, k) for k in _FLAG_FIELDS})
    train.update(cpu=args.cpu or args.device == "cpu", progress=not (args.no_progress or args.quiet),
                 eval_max_new_tokens=args.max_new_tokens)
    adapter = {k: v for k, v in {
        "r": args.rank, "lora_alpha": args.lora_alpha, "dropout": args.dropout,
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
                            test_speakers=args.test_speakers, val_speakers=args.val_speakers,
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
                            language=args.language, decode_task=args.decode_task,
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


def _flag(p: argparse.ArgumentParser, name: str, *, recipe: bool = False, **kw) -> None:
    """``--<name>`` for :class:`~training.config.TrainConfig` field ``name``: its default and
    help come from the field (``recipe``: parser default ``None``, so a recipe can fill it)."""
    from training.config import default_of, help_of

    if kw.get("action") != "store_true":
        kw.setdefault("default", None if recipe else default_of(name))
    p.add_argument("--" + name.replace("_", "-"), dest=name,
                   help=help_of(name, with_default=recipe), **kw)


def register(sub: argparse._SubParsersAction) -> None:
    from probekit.cliutil import (add_device_argument, at_least_one, at_least_zero,
                                  json_object, positive, probability, seed, share)
    from training.adapters import AdapterConfig
    from training.config import help_of

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
    _flag(p, "attribute")
    p.add_argument("--train-groups", default=None, help="comma-separated; default: all")
    _flag(p, "val_speakers", type=at_least_zero)
    _flag(p, "test_speakers", type=share)
    _flag(p, "steps", recipe=True, type=at_least_one)
    _flag(p, "batch_size", recipe=True, type=at_least_one)
    _flag(p, "grad_accum", type=at_least_one)
    _flag(p, "lr", recipe=True, type=positive)
    _flag(p, "lr_schedule", recipe=True, choices=("constant", "linear"))
    a = AdapterConfig()
    p.add_argument("--rank", type=at_least_one, default=None, help=f"LoRA rank (default {a.r})")
    p.add_argument("--lora-alpha", type=positive, default=None,
                   help=f"LoRA scale numerator, the update is scaled by lora-alpha / rank "
                   f"(default {a.lora_alpha:g})")
    p.add_argument("--dropout", type=probability, default=None,
                   help=f"LoRA dropout (default {a.dropout:g})")
    p.add_argument("--targets", default=None,
                   help=f"comma list of adapted modules (default {','.join(a.targets)})")
    p.add_argument("--lora-init", choices=("normal", "gaussian", "kaiming"), default=None,
                   help="lora_A init: std 1 (MAS-LoRA authors, default), std 1/r (peft "
                   "gaussian), kaiming (peft default)")
    _flag(p, "warmup_steps", recipe=True, type=at_least_zero)
    _flag(p, "sampler", recipe=True, choices=("auto", "balanced", "uniform"))
    p.add_argument("--no-importance-weights", action="store_true",
                   help="do not " + help_of("importance_weights"))
    _flag(p, "groups_per_batch", type=at_least_one)
    _flag(p, "min_per_group", type=at_least_one)
    _flag(p, "precision", choices=("fp32", "bf16", "fp16"))
    _flag(p, "gradient_checkpointing", action="store_true")
    _flag(p, "language")
    _flag(p, "decode_task", choices=("transcribe", "translate"))
    _flag(p, "select_d", recipe=True, type=float)
    _flag(p, "select_metric", recipe=True, choices=("macro", "micro"))
    p.add_argument("--eval-d", type=float, default=None,
                   help="MAS-LoRA: also report the test WER with the accent known (1/d rule)")
    p.add_argument("--max-new-tokens", type=at_least_one, default=None,
                   help=help_of("eval_max_new_tokens"))
    _flag(p, "eval_every", type=at_least_zero)
    _flag(p, "seed", type=seed)
    add_device_argument(p, what="training", note="; cpu forces the CPU, other values leave "
                        "placement to accelerate")
    p.add_argument("--cpu", action="store_true", help="force the CPU (as --device cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (as -q)")
    p.set_defaults(func=_train)
