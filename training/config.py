"""Training settings (:class:`TrainConfig`), the accelerator and gradient checkpointing.

:class:`TrainConfig` is the one source of the training defaults and of their one-line help:
``probekit train`` builds its flags from it (:func:`default_of`, :func:`help_of`) and a study's
``[training]`` section (the study config's ``TrainingSpec``) takes its defaults from
it, so the library, the command line and a study fine-tune alike unless told otherwise."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields

from probekit.errors import ProbekitError

__all__ = ["TrainConfig", "TrainingError", "MAX_LABEL_TOKENS", "default_of", "help_of",
           "enable_gradient_checkpointing", "is_checkpointing"]


#: Whisper's decoder length (``max_target_positions``): labels longer than this cannot train.
MAX_LABEL_TOKENS = 448


class TrainingError(ProbekitError, ValueError):
    """A training setup that cannot work as asked."""


def _opt(default, help: str):
    """A field with a default and the one-line help its ``probekit train`` flag shows."""
    return field(default=default, metadata={"help": help})


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
        Groups per balanced batch (default: all, capped so each has ``min_per_group``
        utterances); see :class:`~training.sampler.GroupBalancedBatchSampler`.
    attribute : str
        Group attribute used for the objective's groups and MAS-LoRA routing.
    eval_every : int
        Validate every so many steps (and at the end); 0: only at the end.
    save_every : int
        Checkpoint every so many steps (and at the end).
    seed : int
    cpu : bool
        Force the CPU. Default False: accelerate uses the GPU when there is one.
    progress : bool
    eval_batch_size : int
    precision : {"fp32", "bf16", "fp16"}
        Mixed precision of the forward/backward (accelerate autocast; fp16 with a gradient
        scaler). The adapters, their gradients and AdamW's state are float32 in every mode.
    gradient_checkpointing : bool
        Recompute the frozen model's activations in the backward pass (non-reentrant).
    sampler : {"auto", "balanced", "uniform"}
        ``auto``: group-balanced batches for objectives that compare groups (DRO, IRM, fused),
        uniform batches for ERM and SD, with plain LoRA or MAS-LoRA alike.
    min_per_group : int
        Balanced batches must give every group at least this many utterances (a group risk
        of one utterance is per-utterance calibration, not a group's risk).
    language, decode_task : str, optional
        Forced decoder prefix of multilingual checkpoints, for labels and generation alike
        (English, transcribe): Whisper's decoding task, not a probing task; ignored by
        English-only checkpoints.
    max_label_tokens : int
        Training utterances whose labels are longer are dropped (Whisper's 448 positions).
    long_audio : {"drop", "error"}
        Training utterances longer than Whisper's window: dropped with a warning, or an
        error (the feature extractor would cut the audio while the whole transcript stays
        the target).
    select_d : float, optional
        MAS-LoRA model selection on the accent-known mixture with this ``d`` (``1``: each
        utterance's own expert, as the authors select); ``None``: the uniform mixture.
    eval_max_new_tokens : int, optional
        Decoding cap of validation (default: the model's limit minus the prompt, as
        :func:`training.evaluate.transcribe`).
    lr_schedule : {"constant", "linear"}
        After the warm-up: constant (seed 000's "fixed LR"), or linear decay to 0 at
        ``steps`` (the MAS-LoRA authors' transformers default).
    select_metric : {"macro", "micro"}
        Validation WER that picks the best adapters: macro (unweighted mean of the group
        WERs) or micro (overall WER, as the MAS-LoRA authors select).
    test_speakers : float
        Share of each group's speakers held out (with the sentences they read) for the test
        WER, when :func:`training.finetune.finetune` makes the split
        (:func:`training.splits.finetune_splits`).
    val_speakers : int
        Speakers per trained group held out for validation (model selection).
    importance_weights : bool
        Under a group-balanced sampler, weight the pooled ERM/SD terms of objectives that
        have them (fused, IRM, SD) by the training share of each utterance's group over its
        share of the batch, so they stay the empirical risk (as the fused objective's
        reference implementation does). Default True; ``erm_balanced`` (the sampler control)
        is never weighted.
    """

    out_dir: str
    steps: int = _opt(100, "optimiser steps")
    batch_size: int = _opt(8, "utterances per optimiser step over all processes")
    grad_accum: int = _opt(1, "gradient accumulation steps")
    lr: float = _opt(4e-5, "learning rate")
    warmup_steps: int = _opt(0, "linear learning-rate warm-up steps")
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    groups_per_batch: int | None = _opt(None, "groups in a balanced batch (default: all, capped "
                                        "at batch-size / min-per-group)")
    attribute: str = _opt("accent", "group attribute (objective, experts)")
    eval_every: int = _opt(0, "validate every N steps (0: only at the end)")
    save_every: int = 25
    seed: int = _opt(0, "seed of the split, adapters and batches")
    cpu: bool = False
    progress: bool = True
    eval_batch_size: int = 8
    precision: str = _opt("fp32", "mixed precision (adapters and optimizer state stay fp32)")
    gradient_checkpointing: bool = _opt(False, "recompute activations in the backward pass "
                                        "(less memory)")
    sampler: str = _opt("auto", "auto: group-balanced for DRO/IRM/fused/erm_balanced, uniform "
                        "for ERM and SD")
    min_per_group: int = _opt(2, "utterances per group a balanced batch must give DRO/IRM")
    language: str | None = _opt("english", "forced language of multilingual checkpoints "
                                "(labels and decoding)")
    decode_task: str | None = _opt("transcribe", "Whisper's forced decoding task on "
                                   "multilingual checkpoints")
    max_label_tokens: int = MAX_LABEL_TOKENS
    long_audio: str = "drop"
    select_d: float | None = _opt(None, "MAS-LoRA: select the checkpoint on the accent-known "
                                  "mixture with this d (1: own expert, as the authors); "
                                  "default: the uniform mixture")
    importance_weights: bool = _opt(True, "importance-weight the pooled ERM/SD terms under "
                                    "balanced batches")
    lr_schedule: str = _opt("constant", "after the warm-up: constant or linear decay to 0")
    eval_max_new_tokens: int | None = _opt(None, "decoding length cap (default: the model's 448 "
                                           "minus the prompt; hypotheses that reach it are "
                                           "flagged in hit_max_tokens)")
    select_metric: str = _opt("macro", "validation WER that selects the checkpoint")
    test_speakers: float = _opt(0.5, "share of each group's speakers held out (with the "
                                "sentences they read) for the reported test WER")
    val_speakers: int = _opt(1, "speakers per trained group held out for validation (model "
                             "selection)")

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("constant", "linear"):
            raise TrainingError(f"lr_schedule must be 'constant' or 'linear', got "
                                f"{self.lr_schedule!r}")
        if self.select_metric not in ("macro", "micro"):
            raise TrainingError(f"select_metric must be 'macro' or 'micro', got "
                                f"{self.select_metric!r}")
        if self.precision not in _MIXED:
            raise TrainingError(f"precision must be one of {sorted(_MIXED)}, got "
                                f"{self.precision!r}")
        if self.sampler not in ("auto", "balanced", "uniform"):
            raise TrainingError(f"sampler must be 'auto', 'balanced' or 'uniform', got "
                                f"{self.sampler!r}")
        if self.long_audio not in ("drop", "error"):
            raise TrainingError(f"long_audio must be 'drop' or 'error', got {self.long_audio!r}")


def default_of(name: str):
    """The default of :class:`TrainConfig` field ``name``."""
    f = {f.name: f for f in fields(TrainConfig)}[name]
    return None if f.default is MISSING else f.default


def help_of(name: str, *, with_default: bool = False) -> str:
    """The one-line help of field ``name``; ``with_default`` appends ``(default: X)`` (for a
    flag whose parser default is ``None`` so that a recipe can fill it)."""
    f = {f.name: f for f in fields(TrainConfig)}[name]
    text = f.metadata.get("help") or name.replace("_", " ")
    d = default_of(name)
    return f"{text} (default: {d})" if with_default and d is not None and d is not False else text


_MIXED = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}

#: Settings a resumed run may change (they do not change what is trained).
_RESUMABLE = {"out_dir", "steps", "progress", "eval_batch_size", "cpu", "save_every",
              "eval_every"}


def _accelerator(cpu: bool, mixed_precision: str):
    """An ``Accelerator`` with this precision, also when an earlier trainer in the same
    process used another one (accelerate keeps one global state and refuses to change its
    precision; the process group, ``PartialState``, is kept). The state is shared, so an
    earlier trainer's accelerator follows the new precision too: trainers of different
    precisions in one process must run one after the other, as they do in the tests."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    current = AcceleratorState._shared_state.get("_mixed_precision")
    if current is not None and current != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=cpu, mixed_precision=mixed_precision)


def enable_gradient_checkpointing(model) -> None:
    """Non-reentrant activation checkpointing on a transformers model (either API name).

    Non-reentrant: the frozen base's inputs need no ``requires_grad`` and recomputation sees
    the same MAS-LoRA routing as the forward, as long as the backward runs inside
    :func:`~training.adapters.routed` (the trainer does).
    """
    kw = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
    model.config.use_cache = False


def is_checkpointing(model) -> bool:
    try:  # the current name first: reading the deprecated one warns
        return bool(model.is_activation_checkpointing)
    except AttributeError:
        return bool(getattr(model, "is_gradient_checkpointing", False))
