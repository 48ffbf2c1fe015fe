"""The seed papers' fine-tuning recipes as presets; explicit settings override them.

Each value says where it comes from. ``[code]``: the MAS-LoRA authors' training script and
``MASLoRA_models.py``; ``[paper]``: the paper's text; ``[ref]``: a third-party reference
implementation of the fused objective (Quarkeen/AI_ASR ``fair_asr_core.py``); ``[ours]``: our
choice where the source says nothing.

    cfg, adapter, method, objective, args = recipe_settings("maslora", out_dir="runs/mas")
    finetune(corpus, config=cfg, adapter=adapter, method=method, objective=objective,
             objective_args=args)
"""

from __future__ import annotations

from dataclasses import fields

from training.config import TrainConfig, TrainingError

__all__ = ["RECIPES", "recipe_settings"]

#: name -> {"train": TrainConfig fields, "adapter": AdapterConfig fields, "method",
#: "objective", "objective_args", "sources": {setting: where it comes from}}
RECIPES: dict[str, dict] = {
    "maslora": {
        "method": "mas-lora", "objective": "erm",
        "objective_args": {"erm_reduction": "token"},
        "train": {"batch_size": 16, "lr": 5e-5, "steps": 28000, "warmup_steps": 0,
                  "lr_schedule": "linear", "weight_decay": 0.0, "max_grad_norm": 1.0,
                  "select_d": 1.0, "select_metric": "micro", "sampler": "uniform"},
        "adapter": {"r": 16, "lora_alpha": 16.0, "dropout": 0.05, "targets": ("q_proj", "v_proj"),
                    "decoder": True, "init": "normal"},
        "sources": {
            "method": "[paper] arXiv 2505.20006: one encoder expert per accent",
            "erm_reduction": "[code] transformers' CrossEntropyLoss: token mean over the batch",
            "batch_size": "[code] effective batch 16", "lr": "[code] 5e-5",
            "steps": "[code] 28k steps",
            "lr_schedule": "[code] Seq2SeqTrainingArguments default: linear decay to 0, no "
                           "warm-up",
            "weight_decay": "[code] transformers default 0",
            "max_grad_norm": "[code] transformers default 1.0",
            "select": "[code] best validation WER (evaluate's micro WER) with each utterance's "
                      "own expert (d = 1)",
            "sampler": "[code] uniform batches",
            "adapter": "[code] rank 16, alpha 16, dropout 0.05, q and v, decoder LoRA, A ~ N(0, 1)"
                       ", B = 0",
        },
    },
    "fusion": {
        "method": "lora", "objective": "fused", "objective_args": {},
        "train": {"batch_size": 16, "lr": 4e-5, "steps": 1000, "warmup_steps": 0,
                  "lr_schedule": "constant", "weight_decay": 0.0, "max_grad_norm": 1.0,
                  "select_d": None, "select_metric": "macro", "sampler": "auto",
                  "importance_weights": True},
        "adapter": {"r": 16, "lora_alpha": 16.0, "dropout": 0.05, "targets": ("q_proj", "v_proj"),
                    "decoder": True, "init": "kaiming"},
        "sources": {
            "objective": "[paper] arXiv 2510.18374 Sec. 2.5: 1 ERM + 1 DRO + 0.06 SD + 0.01 IRM "
                         "(readings: docs/training.md)",
            "lr": "[paper] 4e-5, fixed", "lr_schedule": "[paper] fixed learning rate",
            "batch_size": "[ref] 16 (the paper does not say)",
            "steps": "[ours] the paper does not say; set it for your data",
            "select": "[paper] macro-WER is the paper's metric",
            "sampler": "[ref] group-balanced batches with importance-weighted ERM/SD terms",
            "adapter": "[ref] peft LoRA defaults: Kaiming-uniform A (std ~0.02 at d=768), B = 0;"
                       " rank 16, alpha 16, dropout 0.05 [ours: the paper says 'lightweight']",
        },
    },
}

_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}


def recipe_settings(name: str, *, out_dir: str, train: dict | None = None,
                    adapter: dict | None = None, objective_args: dict | None = None):
    """``(TrainConfig, adapter dict, method, objective, objective_args)`` of recipe ``name``
    with ``train`` / ``adapter`` / ``objective_args`` overriding its values."""
    if name not in RECIPES:
        raise TrainingError(f"unknown recipe {name!r}; known: {sorted(RECIPES)}")
    r = RECIPES[name]
    bad = sorted(set(train or {}) - _TRAIN_FIELDS)
    if bad:
        raise TrainingError(f"unknown TrainConfig field(s) {bad}")
    cfg = TrainConfig(out_dir=out_dir, **{**r["train"], **(train or {})})
    return (cfg, {**r["adapter"], **(adapter or {})}, r["method"], r["objective"],
            {**r["objective_args"], **(objective_args or {})})
