"""Inject, save, load and merge LoRA adapters on a transformers Whisper model.

One function family serves both methods: plain LoRA (one expert everywhere) and MAS-LoRA
(one expert per accent in every encoder self-attention projection, plain LoRA in the
decoder; see :mod:`training.adapters.mas_lora`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from probekit.errors import ProbekitError
from training.adapters.layer import LoRALinear

__all__ = ["AdapterConfig", "AdapterError", "inject_adapters", "lora_layers",
           "trainable_parameters", "save_adapters", "load_adapters", "merge_adapters",
           "ADAPTER_CONFIG", "ADAPTER_WEIGHTS"]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"

_ENCODER_ATTN = re.compile(r"(^|\.)encoder\.layers\.\d+\.self_attn\.(\w+)$")
_DECODER_ATTN = re.compile(r"(^|\.)decoder\.layers\.\d+\.(self_attn|encoder_attn)\.(\w+)$")


class AdapterError(ProbekitError, ValueError):
    """Bad adapter configuration or a saved adapter that does not fit the model."""


@dataclass
class AdapterConfig:
    """What to inject.

    Parameters
    ----------
    r, lora_alpha, dropout
        LoRA rank, scale numerator (update scaled by ``lora_alpha / r``) and branch dropout;
        defaults from both seed papers (16, 16, 0.05). ``lora_alpha`` is the LoRA scale, never
        a test level; an ``adapter_config.json`` written before the rename (``alpha``) loads.
    targets : tuple of str
        Attention projections to adapt (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``).
    decoder : bool
        Also adapt the decoder's self- and cross-attention with one plain LoRA.
    experts : tuple of str
        Empty: plain LoRA. Otherwise MAS-LoRA with one encoder expert per name (accents).
    init : {"normal", "gaussian", "kaiming"}
        ``lora_A`` initialisation (:class:`~training.adapters.layer.LoRALinear`): std 1 as in
        the MAS-LoRA authors' code (default), std 1/r (peft "gaussian"), or Kaiming-uniform.
    """

    r: int = 16
    lora_alpha: float = 16.0
    dropout: float = 0.05
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    decoder: bool = True
    experts: tuple[str, ...] = field(default_factory=tuple)
    init: str = "normal"

    def __post_init__(self) -> None:
        if self.init not in ("normal", "gaussian", "kaiming"):
            raise AdapterError(f"init must be 'normal', 'gaussian' or 'kaiming', got {self.init!r}")
        self.targets, self.experts = tuple(self.targets), tuple(self.experts)
        bad = set(self.targets) - {"q_proj", "k_proj", "v_proj", "out_proj"}
        if bad or not self.targets:
            raise AdapterError(f"targets must be attention projections, got {self.targets}")
        if len(set(self.experts)) != len(self.experts):
            raise AdapterError(f"expert names must be distinct, got {self.experts}")

    @property
    def method(self) -> str:
        return "mas_lora" if self.experts else "lora"

    def to_dict(self) -> dict:
        return {**asdict(self), "method": self.method}


def _targets(model: nn.Module, cfg: AdapterConfig):
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear):
            continue
        m = _ENCODER_ATTN.search(name)
        if m and m.group(2) in cfg.targets:
            yield name, max(1, len(cfg.experts))
        m = _DECODER_ATTN.search(name)
        if cfg.decoder and m and m.group(3) in cfg.targets:
            yield name, 1


def inject_adapters(model: nn.Module, cfg: AdapterConfig, *, seed: int | None = None) -> nn.Module:
    """Freeze ``model`` and replace the targeted linears by :class:`LoRALinear` (in place).

    Returns the model; ``model.adapter_config`` is set to ``cfg``.
    """
    if getattr(model, "adapter_config", None) is not None:
        raise AdapterError("this model already carries adapters")
    for p in model.parameters():
        p.requires_grad_(False)
    gen_state = torch.random.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    found = list(_targets(model, cfg))
    if not found:
        raise AdapterError(f"no {cfg.targets} attention projections found: not a Whisper model?")
    for name, n in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), n, cfg.r, cfg.lora_alpha,
                                          cfg.dropout, init=cfg.init))
    if seed is not None:
        torch.random.set_rng_state(gen_state)
    model.adapter_config = cfg
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
            if ".lora_A" in k or ".lora_B" in k}


def save_adapters(model: nn.Module, folder: str | Path) -> Path:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` (adapters only)."""
    from safetensors.torch import save_file

    cfg = getattr(model, "adapter_config", None)
    if cfg is None:
        raise AdapterError("model has no adapters to save")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    from probekit.atomic import replacing, write_json
    with replacing(folder / ADAPTER_WEIGHTS) as tmp:
        save_file(adapter_state_dict(model), str(tmp))
    write_json(folder / ADAPTER_CONFIG, cfg.to_dict())
    return folder


def load_adapters(model: nn.Module, folder: str | Path) -> nn.Module:
    """Inject the adapters saved in ``folder`` into a base ``model`` and load their weights."""
    from safetensors.torch import load_file

    from dataclasses import fields

    from probekit.jsonfile import read_json_object

    folder = Path(folder)
    if not (folder / ADAPTER_CONFIG).is_file():
        raise AdapterError(f"{folder}: no {ADAPTER_CONFIG}")
    d = read_json_object(folder / ADAPTER_CONFIG, "adapter config")  # else one error naming it
    d.pop("method", None)
    if "alpha" in d and "lora_alpha" not in d:   # written before the rename to lora_alpha
        d["lora_alpha"] = d.pop("alpha")
    known = [f.name for f in fields(AdapterConfig)]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise AdapterError(f"{folder / ADAPTER_CONFIG}: unknown field {', '.join(unknown)} "
                           f"(known: {', '.join(known)})")
    try:
        cfg = AdapterConfig(**d)
    except (TypeError, ValueError) as exc:
        raise AdapterError(f"{folder / ADAPTER_CONFIG}: {exc}") from None
    try:  # safetensors: a file that is not one is refused, never executed
        state = load_file(str(folder / ADAPTER_WEIGHTS))
    except Exception as exc:  # SafetensorError, OSError
        raise AdapterError(f"{folder / ADAPTER_WEIGHTS}: not adapter weights probekit wrote "
                           f"({str(exc)[:120] or type(exc).__name__})") from None
    inject_adapters(model, cfg)
    expected = set(adapter_state_dict(model))
    if set(state) != expected:
        diff = sorted(expected ^ set(state))[:3]
        raise AdapterError(f"{folder}: saved adapters do not fit this model (e.g. {diff})")
    model.load_state_dict(state, strict=False)
    return model


def merge_adapters(model: nn.Module) -> nn.Module:
    """Fold every adapter (with its current mixture weights) into the base weights, in place.

    The result is a plain transformers model (no LoRA modules, ``adapter_config`` removed)
    that computes exactly what the adapted model computed in eval mode.
    """
    for name, mod in list(lora_layers(model).items()):
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, mod.merged_linear())
    model.adapter_config = None
    return model
