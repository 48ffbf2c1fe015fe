"""Train adapters with any objective, on ``accelerate``.

The same code runs on the CPU (``Accelerator(cpu=True)``), one GPU, or DDP over several
GPUs/nodes when started with ``accelerate launch``: each process takes its slice of every
global batch. The trainer owns the optimizer (AdamW over the adapter parameters only, linear
warm-up then constant), checkpoints after every ``save_every`` steps (atomic rename), resumes
from the last checkpoint, validates with macro-WER every ``eval_every`` steps and keeps the
best adapters (model selection, as MAS-LoRA does), logs every loss term of the objective to
``log.jsonl`` and ``log.csv``, and is deterministic for a seed: the batches are a function of
``(seed, step)`` and the dropout generator is re-seeded at every step, so an interrupted and
resumed run ends where an uninterrupted one does.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from probekit.errors import ProbekitError
from training.adapters import routed, save_adapters, trainable_parameters
from training.adapters.lora import ADAPTER_WEIGHTS, adapter_state_dict
from training.data import AudioCache, collate
from training.objectives import Objective, ObjectiveInput
from training.sampler import GroupBalancedBatchSampler

__all__ = ["TrainConfig", "Trainer", "TrainingError"]

log = logging.getLogger(__name__)


class TrainingError(ProbekitError, ValueError):
    """A training setup that cannot work as asked."""


@dataclass
class TrainConfig:
    """Optimisation settings.

    Parameters
    ----------
    out_dir : str
        Checkpoints, best adapters and logs go here (never into git).
    steps : int
        Optimizer steps.
    batch_size : int
        Utterances per optimizer step (global, over all processes and micro-batches).
    grad_accum : int
        Micro-batches per step; refused for objectives that need the whole batch.
    lr : float
        AdamW learning rate. The papers use 4e-5 (fusion, seed 000) and 5e-5 (MAS-LoRA, seed
        003) over thousands of steps; short CPU demonstrations need a larger one.
    warmup_steps, weight_decay, max_grad_norm
    groups_per_batch : int, optional
        See :class:`~training.sampler.GroupBalancedBatchSampler`.
    attribute : str
        Group attribute used for the objective's groups and MAS-LoRA routing.
    eval_every : int
        Validate every so many steps (and at the end); 0: only at the end.
    save_every : int
        Checkpoint every so many steps (and at the end).
    seed : int
    """

    out_dir: str
    steps: int = 100
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 4e-5
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    groups_per_batch: int | None = None
    attribute: str = "accent"
    eval_every: int = 0
    save_every: int = 25
    seed: int = 0
    cpu: bool = True
    progress: bool = True
    eval_batch_size: int = 8


class Trainer:
    """Fit the adapters of ``model`` on ``train`` with ``objective``.

    Parameters
    ----------
    model : WhisperForConditionalGeneration with adapters injected
        (:func:`~training.adapters.inject_adapters` / :func:`~training.adapters.apply_mas_lora`).
    processor : WhisperProcessor
    objective : Objective
    train, val : probekit.corpus.Corpus
        ``val`` (optional) is transcribed for model selection by macro-WER.
    config : TrainConfig
    """

    def __init__(self, model, processor, objective: Objective, train, config: TrainConfig,
                 val=None, accelerator=None) -> None:
        from accelerate import Accelerator

        if getattr(model, "adapter_config", None) is None:
            raise TrainingError("the model carries no adapters; inject them first")
        if config.grad_accum > 1 and objective.needs_whole_batch:
            raise TrainingError(
                f"{objective!r} takes a hard max over the groups of the whole batch, which "
                f"gradient accumulation ({config.grad_accum} micro-batches) would silently "
                "change; use grad_accum=1 (a smaller batch) or dro_mode='online'")
        if config.batch_size % config.grad_accum:
            raise TrainingError(f"batch_size {config.batch_size} is not a multiple of "
                                f"grad_accum {config.grad_accum}")
        self.cfg, self.objective, self.processor = config, objective, processor
        self.train_corpus, self.val_corpus = train, val
        self.out = Path(config.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.acc = accelerator or Accelerator(cpu=config.cpu)
        self.groups = [u.group(config.attribute) for u in train]
        self.sampler = GroupBalancedBatchSampler(self.groups, config.batch_size,
                                                 config.groups_per_batch, seed=config.seed)
        params = list(trainable_parameters(model).values())
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        warm = max(config.warmup_steps, 0)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
        self.model, self.opt, self.sched = self.acc.prepare(model, opt, sched)
        self.raw = self.acc.unwrap_model(self.model)
        self.audio = AudioCache(train, processor.feature_extractor.sampling_rate)
        self.val_audio = AudioCache(val, processor.feature_extractor.sampling_rate) if val else None
        self.step, self.best, self.best_step = 0, math.inf, -1

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        if not self.acc.is_main_process:
            return
        state = {"step": self.step, "adapters": adapter_state_dict(self.raw),
                 "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                 "objective": self.objective.state_dict(), "best": self.best,
                 "best_step": self.best_step, "config": asdict(self.cfg)}
        tmp = self.checkpoint_path.with_suffix(f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    def resume(self) -> bool:
        """Load the last checkpoint if there is one; returns whether it did."""
        if not self.checkpoint_path.exists():
            return False
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        self.raw.load_state_dict(state["adapters"], strict=False)
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.objective.load_state_dict(state["objective"])
        self.step, self.best, self.best_step = state["step"], state["best"], state["best_step"]
        log.info("resumed %s at step %d", self.out, self.step)
        return True

    # -- one step ---------------------------------------------------------------------------
    def _micro_batches(self, idx: list[int]) -> list[list[int]]:
        rank, world = self.acc.process_index, self.acc.num_processes
        mine = idx[rank::world]
        k = self.cfg.grad_accum
        size = -(-len(mine) // k)
        return [mine[i: i + size] for i in range(0, len(mine), size)]

    def train_step(self) -> dict[str, float]:
        """One optimizer step; returns the objective's terms (averaged over micro-batches)."""
        torch.manual_seed(self.cfg.seed * 1_000_003 + self.step)  # dropout, resumable
        self.model.train()
        utts = [self.train_corpus[i] for i in self.sampler.batch(self.step)]
        micro = self._micro_batches(list(range(len(utts))))
        terms: dict[str, float] = {}
        cfg = self.raw.config
        for part in micro:
            sub = [utts[i] for i in part]
            batch = collate(sub, self.audio, self.processor.feature_extractor,
                            self.processor.tokenizer, cfg.decoder_start_token_id)
            groups = [u.group(self.cfg.attribute) for u in sub]
            with routed(self.raw, groups):
                logits = self.model(input_features=batch["input_features"].to(self.acc.device),
                                    decoder_input_ids=batch["decoder_input_ids"].to(
                                        self.acc.device)).logits
            out = self.objective(ObjectiveInput(logits, batch["labels"].to(logits.device),
                                                groups))
            self.acc.backward(out["loss"] / len(micro))
            for k, v in out.items():
                terms[k] = terms.get(k, 0.0) + float(v.detach()) / len(micro)
        if self.cfg.max_grad_norm:
            self.acc.clip_grad_norm_(list(trainable_parameters(self.raw).values()),
                                     self.cfg.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        return terms

    # -- validation -------------------------------------------------------------------------
    def validate(self) -> dict:
        from training.evaluate import transcribe, wer_report

        df = transcribe(self.raw, self.processor, self.val_corpus,
                        batch_size=self.cfg.eval_batch_size, attribute=self.cfg.attribute,
                        audio=self.val_audio)
        rep = wer_report(df, self.cfg.attribute)
        return {"val_macro_wer": rep.macro, "val_overall_wer": rep.overall, "val_gap": rep.gap,
                **{f"val_wer_{g}": w for g, w in rep.by_group["wer"].items()}}

    def _log(self, row: dict) -> None:
        if not self.acc.is_main_process:
            return
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        path = self.out / "log.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row), extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)

    def _maybe_validate(self) -> None:
        if self.val_corpus is None:
            return
        metrics = self.validate()
        self._log({"step": self.step, "kind": "val", **metrics})
        if metrics["val_macro_wer"] < self.best:
            self.best, self.best_step = metrics["val_macro_wer"], self.step
            if self.acc.is_main_process:
                save_adapters(self.raw, self.out / "best")

    # -- the loop ---------------------------------------------------------------------------
    def fit(self, *, stop_after: int | None = None, load_best: bool = True):
        """Train to ``config.steps`` (resuming from a checkpoint in ``out_dir`` if present).

        ``stop_after`` stops after that many steps of this call (simulates an interruption;
        a checkpoint is written first). Returns the (unwrapped) model, with the best
        validation adapters loaded when ``load_best`` and a validation set was given.
        """
        from tqdm.auto import tqdm

        self.resume()
        done_here = 0
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc=f"train {self.objective.name}",
                   disable=not (self.cfg.progress and self.acc.is_main_process))
        while self.step < self.cfg.steps:
            t0 = time.perf_counter()
            terms = self.train_step()
            done_here += 1
            self._log({"step": self.step, "kind": "train", "lr": self.sched.get_last_lr()[0],
                       "seconds": round(time.perf_counter() - t0, 4), **terms})
            bar.update(1)
            bar.set_postfix(loss=f"{terms['loss']:.3f}")
            if self.cfg.eval_every and self.step % self.cfg.eval_every == 0 \
                    and self.step < self.cfg.steps:
                self._maybe_validate()
            last = self.step >= self.cfg.steps
            if last:
                self._maybe_validate()
            if last or self.step % max(self.cfg.save_every, 1) == 0 or \
                    (stop_after is not None and done_here >= stop_after):
                self.save_checkpoint()
            if stop_after is not None and done_here >= stop_after:
                break
        bar.close()
        if load_best and self.step >= self.cfg.steps and (self.out / "best" / ADAPTER_WEIGHTS).exists():
            from safetensors.torch import load_file

            self.raw.load_state_dict(load_file(str(self.out / "best" / ADAPTER_WEIGHTS)),
                                     strict=False)
        return self.raw
