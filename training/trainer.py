"""Train adapters with any objective, on ``accelerate``.

The same code runs on the CPU (``TrainConfig(cpu=True)``), one GPU (the default: accelerate
picks the device), or DDP over several GPUs/nodes when started with ``accelerate launch``:
each process takes its slice of every global batch; group statistics (hard-max DRO, IRM,
online-DRO weights) are summed over processes before the max or the penalty, so a step
under DDP is the step on the whole batch (tested with 2 gloo processes). Mixed precision
(``precision="bf16"|"fp16"``: accelerate's autocast, adapters and optimizer state stay
float32) and gradient checkpointing (non-reentrant; MAS-LoRA's routing stays active through
the backward pass, so recomputation is routed too) are settings of :class:`TrainConfig`.
The trainer owns the optimizer (AdamW over the adapter parameters only, linear warm-up then
constant or linear decay), checkpoints after every ``save_every`` steps (atomic rename, with
the run's identity: another run's checkpoint is refused, never resumed), resumes from the
last checkpoint, validates with macro- or micro-WER every ``eval_every`` steps and keeps the
best adapters (model selection, as MAS-LoRA does), takes log-mels from a per-utterance cache
with the next batch prepared in the background, logs every loss term of the objective (and
the fused terms' loss and gradient shares at the first and last step) to ``log.jsonl`` and
``log.csv``, and is deterministic for a seed: the batches are a function of
``(seed, step)`` and the dropout generator is re-seeded at every step, so an interrupted and
resumed run ends where an uninterrupted one does.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch

from training.adapters import hold_absent_experts, routed, save_adapters, trainable_parameters
from training.adapters.lora import ADAPTER_WEIGHTS
from training.checkpoint import CheckpointMixin, load_checkpoint
from training.data import (AudioCache, FeatureCache, check_lengths, collate, decoder_prefix,
                           is_multilingual)
from training.objectives import Objective, ObjectiveInput
from training.config import (_MIXED, _RESUMABLE, TrainConfig, TrainingError, _accelerator,
                             enable_gradient_checkpointing, is_checkpointing)
from training.runkey import split_sides
from training.trainlog import rebuild_csv, term_shares_of
from training.sampler import (GroupBalancedBatchSampler, UniformBatchSampler,
                              default_groups_per_batch)

__all__ = ["TrainConfig", "Trainer", "TrainingError", "load_checkpoint",
           "enable_gradient_checkpointing", "is_checkpointing"]

log = logging.getLogger(__name__)


class Trainer(CheckpointMixin):
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
    identity : dict, optional
        More of what determines the weights (e.g. the base model's fingerprint, as
        :func:`training.finetune.finetune` passes); stored in every checkpoint with the
        training and validation ids, the settings, the objective and the adapter config. A
        checkpoint of another identity is refused (naming what differs), never resumed.
    """

    def __init__(self, model, processor, objective: Objective, train, config: TrainConfig,
                 val=None, accelerator=None, identity: dict | None = None) -> None:
        if getattr(model, "adapter_config", None) is None:
            raise TrainingError("the model carries no adapters; inject them first")
        if config.grad_accum > 1 and objective.needs_whole_batch:
            raise TrainingError(
                f"{objective!r} takes a hard max over the groups of the whole batch, which "
                f"gradient accumulation ({config.grad_accum} micro-batches) would silently "
                "change; use grad_accum=1 (a smaller batch) or dro_mode='online'")
        if config.select_d is not None and not model.adapter_config.experts:
            raise TrainingError(f"select_d={config.select_d:g} selects on MAS-LoRA's "
                                "accent-known mixture; this model has no experts")
        if config.batch_size % config.grad_accum:
            raise TrainingError(f"batch_size {config.batch_size} is not a multiple of "
                                f"grad_accum {config.grad_accum}")
        self.cfg, self.objective, self.processor = config, objective, processor
        self.out = Path(config.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.acc = accelerator or _accelerator(config.cpu, _MIXED[config.precision])
        world = self.acc.num_processes
        if world > 1 and config.grad_accum > 1 and config.batch_size % (config.grad_accum * world):
            # every process must run the same number of micro-batches: the objectives'
            # all-gathers pair them up
            raise TrainingError(f"batch_size {config.batch_size} is not a multiple of "
                                f"grad_accum x processes = {config.grad_accum * world}")
        sr = processor.feature_extractor.sampling_rate
        self.prefix = decoder_prefix(processor.tokenizer, is_multilingual(model),
                                     config.language, config.decode_task)
        self.audio = AudioCache(train, sr)
        self.features = FeatureCache(self.audio, processor.feature_extractor)
        self._next = None   # (step, future of its micro-batches), prepared in the background
        train = self._drop_long(train)
        self.train_corpus, self.val_corpus = train, val
        self.groups = [u.group(config.attribute) for u in train]
        from collections import Counter

        n = len(self.groups)
        self.group_share = {g: c / n for g, c in Counter(self.groups).items()}
        self.sampler = self._make_sampler()
        base_dtype = model.get_encoder().conv1.weight.dtype
        if config.precision == "fp32" and base_dtype != torch.float32:
            # a half-precision checkpoint under precision="fp32" would train in pure half
            # precision without loss scaling: upcast the frozen base instead (adapters are fp32)
            log.warning("the base model is %s but precision='fp32': upcasting it to float32 "
                        "(use precision='bf16' or 'fp16' for mixed precision)", base_dtype)
            model.float()
        if config.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        params = list(trainable_parameters(model).values())
        if any(p.dtype != torch.float32 for p in params):
            raise TrainingError("adapter parameters must be float32 (LoRALinear keeps them so)")
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        warm, total = max(config.warmup_steps, 0), max(config.steps, 1)

        def factor(s: int) -> float:
            if warm and s < warm:
                return (s + 1) / warm
            if config.lr_schedule == "linear":   # to 0 at `steps` (transformers' "linear")
                return max(0.0, (total - s) / max(total - warm, 1))
            return 1.0

        # not prepared: accelerate's scheduler wrapper steps num_processes times per call,
        # while this trainer shards every batch itself (one scheduler step per optimizer step)
        self.sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        self.model, self.opt = self.acc.prepare(model, opt)
        self.raw = self.acc.unwrap_model(self.model)
        self.val_audio = AudioCache(val, sr) if val else None
        self.step, self.best, self.best_step = 0, math.inf, -1
        cfg_id = {k: v for k, v in asdict(config).items() if k not in _RESUMABLE}
        if config.lr_schedule == "linear":   # the decay is a function of `steps`
            cfg_id["steps"] = config.steps
        self.identity = json.loads(json.dumps(
            {"sides": split_sides(train, val), "config": cfg_id, "objective": repr(objective),
             "adapter_config": self.raw.adapter_config.to_dict(), **(identity or {})},
            default=str))

    def _drop_long(self, train):
        fe, tok = self.processor.feature_extractor, self.processor.tokenizer
        kept, dropped = check_lengths(list(train), self.audio, fe, tok,
                                      max_label_tokens=self.cfg.max_label_tokens,
                                      prefix_len=len(self.prefix))
        if not dropped:
            return train
        if self.cfg.long_audio == "error":
            u, why = dropped[0]
            raise TrainingError(f"{len(dropped)} training utterance(s) exceed Whisper's limits, "
                                f"e.g. {u.id}: {why}; segment them or use long_audio='drop'")
        if not kept:
            raise TrainingError(f"every training utterance exceeds Whisper's limits (e.g. "
                                f"{dropped[0][0].id}: {dropped[0][1]})")
        log.warning("dropped %d of %d training utterances that exceed Whisper's window or "
                    "label length (e.g. %s: %s)", len(dropped), len(train), dropped[0][0].id,
                    dropped[0][1])
        return train.filter(ids=[u.id for u in kept])

    def _make_sampler(self):
        cfg, obj = self.cfg, self.objective
        kind = cfg.sampler
        if kind == "auto":
            kind = "balanced" if getattr(obj, "compares_groups", False) else "uniform"
        self.sampler_kind = kind
        self.weighted = (kind == "balanced" and cfg.importance_weights
                         and getattr(obj, "importance_weighted", False))
        if kind == "uniform":
            return UniformBatchSampler(len(self.groups), cfg.batch_size, seed=cfg.seed)
        n_groups = len(set(self.groups))
        gpb = cfg.groups_per_batch or default_groups_per_batch(n_groups, cfg.batch_size,
                                                                cfg.min_per_group)
        need = cfg.min_per_group if getattr(obj, "compares_groups", False) else None
        try:
            return GroupBalancedBatchSampler(self.groups, cfg.batch_size, gpb, seed=cfg.seed,
                                             min_per_group=need)
        except ValueError as exc:
            raise TrainingError(str(exc)) from None

    # -- one step ---------------------------------------------------------------------------
    def _micro_batches(self, idx: list[int]) -> list[list[int]]:
        rank, world = self.acc.process_index, self.acc.num_processes
        mine = idx[rank::world]
        k = self.cfg.grad_accum
        size = -(-len(mine) // k)
        return [mine[i: i + size] for i in range(0, len(mine), size)]

    def _dtype(self) -> torch.dtype:
        return self.raw.get_encoder().conv1.weight.dtype

    def _prepare(self, step: int) -> tuple[list, list, list]:
        """The utterances of ``step``'s global batch, its micro-batches (this process's
        share) and their collated tensors (features from the cache)."""
        utts = [self.train_corpus[i] for i in self.sampler.batch(step)]
        micro = self._micro_batches(list(range(len(utts))))
        cfg = self.raw.config
        batches = [collate([utts[i] for i in part], self.audio, self.processor.feature_extractor,
                           self.processor.tokenizer, cfg.decoder_start_token_id,
                           prefix=self.prefix, max_label_tokens=self.cfg.max_label_tokens,
                           features=self.features) for part in micro]
        return utts, micro, batches

    def _batches(self, step: int):
        """``_prepare(step)``, taken from the background thread when it was prefetched; the
        next step's batch is then prepared while this step computes (batches are a function
        of ``(seed, step)``, so prefetching changes nothing but the time)."""
        from concurrent.futures import ThreadPoolExecutor

        if self._next is not None and self._next[0] == step:
            out = self._next[1].result()
        else:
            out = self._prepare(step)
        if step + 1 < self.cfg.steps:
            if not hasattr(self, "_pool"):
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="probekit-collate")
            self._next = (step + 1, self._pool.submit(self._prepare, step + 1))
        else:
            self._next = None
        return out

    def train_step(self) -> dict[str, float]:
        """One optimizer step; returns the objective's terms (averaged over micro-batches)."""
        t0 = time.perf_counter()
        utts, micro, batches = self._batches(self.step)
        self.data_seconds = time.perf_counter() - t0
        torch.manual_seed(self.cfg.seed * 1_000_003 + self.step)  # dropout, resumable
        self.model.train()
        all_groups = [u.group(self.cfg.attribute) for u in utts]
        names = list(dict.fromkeys(all_groups))  # the whole batch's groups, same on every rank
        sync = self.acc.num_processes > 1
        terms: dict[str, float] = {}
        dev, dtype = self.acc.device, self._dtype()
        weights = None
        if self.weighted:   # training share of the group / its share of the (global) batch
            in_batch = {g: all_groups.count(g) / len(all_groups) for g in names}
            weights = [self.group_share[g] / in_batch[g] for g in all_groups]
        shares = self._measure_shares()
        for part, batch in zip(micro, batches):
            sub = [utts[i] for i in part]
            groups = [u.group(self.cfg.attribute) for u in sub]
            # routing stays on through backward: recomputed (checkpointed) activations must
            # take the same one-hot path as the forward did
            with routed(self.raw, groups):
                with self.acc.autocast():
                    logits = self.model(
                        input_features=batch["input_features"].to(dev, dtype),
                        decoder_input_ids=batch["decoder_input_ids"].to(dev),
                        use_cache=False).logits
                w = None if weights is None else torch.tensor(
                    [weights[i] for i in part], device=logits.device)
                out = self.objective(ObjectiveInput(logits, batch["labels"].to(logits.device),
                                                    groups, group_names=names, sync=sync,
                                                    weights=w))
                if shares:
                    out.update(self._term_shares(out))
                self.acc.backward(out["loss"] / len(micro))
            for k, v in out.items():
                terms[k] = terms.get(k, 0.0) + float(v.detach()) / len(micro)
        if self.cfg.max_grad_norm:
            self.acc.clip_grad_norm_(list(trainable_parameters(self.raw).values()),
                                     self.cfg.max_grad_norm)
        with hold_absent_experts(self.raw, self.opt, all_groups):
            self.opt.step()
        if not getattr(self.opt, "step_was_skipped", False):  # fp16 overflow: no step
            self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        return terms

    def _measure_shares(self) -> bool:
        """Gradient-norm shares of the weighted terms at the first and last step (one
        process, one micro-batch: an extra backward per term)."""
        return (self.step in (0, self.cfg.steps - 1) and self.acc.num_processes == 1
                and self.cfg.grad_accum == 1)

    def _term_shares(self, out: dict) -> dict:
        params = [p for p in trainable_parameters(self.raw).values() if p.requires_grad]
        return term_shares_of(out, params)

    # -- validation -------------------------------------------------------------------------
    def validate(self) -> dict:
        from training.evaluate import transcribe, wer_report

        df = transcribe(self.raw, self.processor, self.val_corpus,
                        batch_size=self.cfg.eval_batch_size, attribute=self.cfg.attribute,
                        audio=self.val_audio, known_accent_d=self.cfg.select_d,
                        max_new_tokens=self.cfg.eval_max_new_tokens,
                        language=self.cfg.language, decode_task=self.cfg.decode_task)
        rep = wer_report(df, self.cfg.attribute)
        return {"val_macro_wer": rep.macro, "val_overall_wer": rep.overall, "val_gap": rep.gap,
                **{f"val_wer_{g}": w for g, w in rep.by_group["wer"].items()}}

    def _log(self, row: dict) -> None:
        if not self.acc.is_main_process:
            return
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def _write_csv(self) -> None:
        if self.acc.is_main_process:
            rebuild_csv(self.out)

    def _maybe_validate(self) -> None:
        """Main process only (the others wait at a barrier and receive the score), so the
        validation set is transcribed once, not once per process."""
        if self.val_corpus is None:
            return
        score = torch.tensor([math.inf], device=self.acc.device)
        if self.acc.is_main_process:
            metrics = self.validate()
            self._log({"step": self.step, "kind": "val", **metrics})
            key = "val_macro_wer" if self.cfg.select_metric == "macro" else "val_overall_wer"
            score[0] = metrics[key]
            if metrics[key] < self.best:
                save_adapters(self.raw, self.out / "best")
        if self.acc.num_processes > 1:
            import torch.distributed as dist

            dist.broadcast(score, src=0)
        if float(score[0]) < self.best:
            self.best, self.best_step = float(score[0]), self.step
        self.acc.wait_for_everyone()

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
                       "seconds": round(time.perf_counter() - t0, 4),
                       "data_seconds": round(self.data_seconds, 4), **terms})
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
                self._write_csv()
            if stop_after is not None and done_here >= stop_after:
                break
        bar.close()
        if hasattr(self, "_pool"):
            self._pool.shutdown(wait=True)
            del self._pool
        self._next = None
        self.acc.wait_for_everyone()  # best/ is written by the main process
        if load_best and self.step >= self.cfg.steps and (self.out / "best" / ADAPTER_WEIGHTS).exists():
            from safetensors.torch import load_file

            best = self.out / "best" / ADAPTER_WEIGHTS
            try:  # safetensors cannot run code; a file that is not one is named
                state = load_file(str(best))
            except Exception as exc:  # SafetensorError, OSError
                raise TrainingError(f"{best}: not adapter weights probekit wrote "
                                    f"({str(exc)[:120] or type(exc).__name__}); move it away "
                                    "or use a new out_dir") from None
            self.raw.load_state_dict(state, strict=False)
        return self.raw
