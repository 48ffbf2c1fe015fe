"""Training checkpoints: loaded so that they cannot run code, and checked to be probekit's.

:meth:`training.trainer.Trainer.save_checkpoint` writes ``checkpoint.pt`` (``torch.save`` of
tensors, numbers, strings and containers); :func:`load_checkpoint` reads it back with
``torch.load(weights_only=True)`` and refuses anything else found at that path.
:class:`CheckpointMixin` holds the trainer's side: writing the checkpoint (atomic rename, with
the run's identity), resuming from it, and refusing one of another run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

import torch

from training.adapters.lora import adapter_state_dict
from training.runkey import settings_diff
from training.config import TrainingError

__all__ = ["CHECKPOINT_KEYS", "CheckpointMixin", "load_checkpoint"]

log = logging.getLogger("training.trainer")  # the trainer's logger, as before the move

#: Keys every checkpoint probekit writes holds (:meth:`Trainer.save_checkpoint`).
CHECKPOINT_KEYS = ("step", "adapters", "optimizer", "scheduler", "objective", "best",
                   "best_step", "identity")


def load_checkpoint(path: Path) -> dict:
    """A training checkpoint probekit wrote, loaded so that it cannot run code
    (``torch.load(weights_only=True)``: tensors, numbers, strings and containers only).
    Anything else at ``path`` (a user's file, a pickle, a truncated write, another program's
    checkpoint) is a :class:`TrainingError` naming the file, never unpickled."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (not a zip), EOFError...
        why = type(exc).__name__   # not torch's text: it suggests weights_only=False
        raise TrainingError(f"{path} is not a training checkpoint probekit wrote ({why}); "
                            "probekit loads no other file there: move it away or use a new "
                            "out_dir") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise TrainingError(f"{path} is not a training checkpoint probekit wrote (no "
                            f"{', '.join(missing[:4])}); move it away or use a new out_dir")
    return state


class CheckpointMixin:
    """Checkpoints of :class:`training.trainer.Trainer` (it provides ``out``, ``acc``, ``raw``,
    ``opt``, ``sched``, ``objective``, ``cfg``, ``identity``, ``step``, ``best``,
    ``best_step``)."""

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
                 "best_step": self.best_step, "config": asdict(self.cfg),
                 "objective_repr": repr(self.objective),
                 "adapter_config": self.raw.adapter_config.to_dict(),
                 "identity": self.identity,
                 "scaler": self.acc.scaler.state_dict() if self.acc.scaler is not None else None}
        tmp = self.checkpoint_path.with_suffix(f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    def resume(self) -> bool:
        """Load the last checkpoint if there is one; returns whether it did."""
        if not self.checkpoint_path.exists():
            return False
        state = load_checkpoint(self.checkpoint_path)
        self._check_resumable(state)
        self.raw.load_state_dict(state["adapters"], strict=False)
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.objective.load_state_dict(state["objective"])
        if self.acc.scaler is not None and state.get("scaler"):
            self.acc.scaler.load_state_dict(state["scaler"])   # fp16 loss scale
        self.step, self.best, self.best_step = state["step"], state["best"], state["best_step"]
        log.info("resumed %s at step %d", self.out, self.step)
        return True

    def _check_resumable(self, state: dict) -> None:
        """Refuse a checkpoint of another run (what differs is named) or past ``steps``."""
        if "identity" not in state:
            raise TrainingError(f"{self.checkpoint_path} has no run identity (written by an "
                                "older probekit): it cannot be shown to be this run; use a new "
                                "out_dir or delete it")
        diff = settings_diff(state["identity"], self.identity)
        if diff:
            raise TrainingError(f"{self.checkpoint_path} belongs to another run ("
                                + "; ".join(diff[:8]) + "); use a new out_dir or delete it")
        if state["step"] > self.cfg.steps:
            raise TrainingError(f"{self.checkpoint_path} is at step {state['step']}, past the "
                                f"{self.cfg.steps} steps asked for: a shorter run cannot be "
                                "recovered from it; use a new out_dir")
