"""Rank, world size and barriers of a multi-process run (extraction and fine-tuning).

Extraction needs no communication except two barriers (after the fingerprint check, after the
shards), so any launcher that sets ``RANK``/``WORLD_SIZE`` works: ``torchrun``, ``accelerate
launch``, SLURM via torchrun. When a launcher also provides a rendezvous (``MASTER_ADDR``),
a gloo process group gives real barriers (:func:`probekit.store.extract`); without one, ranks
run independently through :func:`probekit.store.extract_shards` and the index is written by
whichever rank finds every shard finished. A neutral module: :mod:`probekit.store` and
``training`` both read the rank from here.
"""

from __future__ import annotations

import os

__all__ = ["rank_and_world", "init_from_env", "is_initialized", "barrier", "local_device"]


def rank_and_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """Explicit values win; otherwise the process group, then ``RANK``/``WORLD_SIZE``."""
    if is_initialized():
        import torch.distributed as dist

        rank = dist.get_rank() if rank is None else rank
        world_size = dist.get_world_size() if world_size is None else world_size
    rank = int(os.environ.get("RANK", 0)) if rank is None else int(rank)
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else int(world_size)
    return rank, world_size


def init_from_env() -> bool:
    """Start a gloo process group when launched by torchrun/accelerate with several ranks.

    Gloo rather than NCCL: only barriers are exchanged, and gloo works on CPU-only nodes.
    Returns whether a process group is initialised.
    """
    if is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 or "MASTER_ADDR" not in os.environ:
        return False
    import torch.distributed as dist

    dist.init_process_group("gloo")
    return True


def is_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if is_initialized():
        import torch.distributed as dist

        dist.barrier()


def local_device(device: str) -> str:
    """``"cuda"``/``"auto"`` -> this rank's GPU (``LOCAL_RANK``) when several ranks share a node."""
    local = os.environ.get("LOCAL_RANK")
    if local is None or device not in ("cuda", "auto"):
        return device
    import torch

    if not torch.cuda.is_available():
        return device
    return f"cuda:{int(local) % torch.cuda.device_count()}"
