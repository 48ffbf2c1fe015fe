"""Training settings (:class:`TrainConfig`), the accelerator and gradient checkpointing."""

from __future__ import annotations

from dataclasses import dataclass

from probekit.errors import ProbekitError
from training.data import MAX_LABEL_TOKENS

__all__ = ["TrainConfig", "TrainingError", "enable_gradient_checkpointing", "is_checkpointing"]


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
    language, task : str, optional
        Forced decoder prefix of multilingual checkpoints, for labels and generation alike
        (English, transcribe); ignored by English-only checkpoints.
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
    importance_weights : bool
        Under a group-balanced sampler, weight the pooled ERM/SD terms of objectives that
        have them (fused, IRM, SD) by the training share of each utterance's group over its
        share of the batch, so they stay the empirical risk (as the fused objective's
        reference implementation does). Default True; ``erm_balanced`` (the sampler control)
        is never weighted.
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
    cpu: bool = False
    progress: bool = True
    eval_batch_size: int = 8
    precision: str = "fp32"
    gradient_checkpointing: bool = False
    sampler: str = "auto"
    min_per_group: int = 2
    language: str | None = "english"
    task: str | None = "transcribe"
    max_label_tokens: int = MAX_LABEL_TOKENS
    long_audio: str = "drop"
    select_d: float | None = None
    importance_weights: bool = True
    lr_schedule: str = "constant"
    eval_max_new_tokens: int | None = None
    select_metric: str = "macro"

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
