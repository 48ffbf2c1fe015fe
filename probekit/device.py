"""The one device resolver of probekit (encoders, probes): ``"auto"`` picks CUDA when there is
a GPU, else the CPU; an explicit device that is not there is refused by name."""

from __future__ import annotations

import torch

from probekit.errors import ProbekitError

__all__ = ["resolve_device", "DeviceError"]


class DeviceError(ProbekitError, ValueError):
    """A device was asked for that this machine does not have."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; ``"cuda"`` without a GPU is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} was requested but no CUDA GPU is available")
    return dev
