"""Training checkpoints: loaded so that they cannot run code, and checked to be probekit's.

:meth:`training.trainer.Trainer.save_checkpoint` writes ``checkpoint.pt`` (``torch.save`` of
tensors, numbers, strings and containers); :func:`load_checkpoint` reads it back with
``torch.load(weights_only=True)`` and refuses anything else found at that path.
"""

from __future__ import annotations

from pathlib import Path

import torch

from training.train_config import TrainingError

__all__ = ["CHECKPOINT_KEYS", "load_checkpoint"]

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
