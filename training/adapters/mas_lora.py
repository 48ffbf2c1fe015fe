"""MAS-LoRA: a mixture of accent-specific LoRA experts (arXiv 2505.20006).

One expert per accent in every encoder self-attention projection (q and v by default), one
plain LoRA in the decoder. Training: each sample passes only through its own accent's expert
(:func:`routed`). Inference: the experts' outputs are mixed with fixed weights
(:func:`mixture_weights`: uniform when the accent is unknown, or the official code's 1/d rule
when it is known), which can be folded into the weights exactly
(:func:`~training.adapters.lora.merge_adapters`), so the merged model costs what the base
model costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from torch import nn

from training.adapters.lora import AdapterConfig, AdapterError, inject_adapters, lora_layers

__all__ = ["mas_lora_config", "apply_mas_lora", "expert_index", "routed", "mixture_weights",
           "set_mixture", "hold_absent_experts"]


def mas_lora_config(accents: Sequence[str], **kwargs) -> AdapterConfig:
    """An :class:`AdapterConfig` with one encoder expert per accent."""
    if len(accents) < 1:
        raise AdapterError("MAS-LoRA needs at least one accent")
    return AdapterConfig(experts=tuple(accents), **kwargs)


def apply_mas_lora(model: nn.Module, accents: Sequence[str], *, seed: int | None = None,
                   **kwargs) -> nn.Module:
    return inject_adapters(model, mas_lora_config(accents, **kwargs), seed=seed)


def expert_index(model: nn.Module, accents: Sequence[str]) -> torch.Tensor:
    """Each accent's expert number, shape (len(accents),); unknown accents raise, naming them."""
    experts = list(model.adapter_config.experts)
    missing = sorted({a for a in accents if a not in experts})
    if missing:
        raise AdapterError(f"no MAS-LoRA expert for accent(s) {missing}; experts: {experts}")
    return torch.tensor([experts.index(a) for a in accents])


@contextmanager
def routed(model: nn.Module, accents: Sequence[str] | None):
    """Within the block, sample ``i`` uses only the expert of ``accents[i]``.

    ``None`` or a model without experts: no routing (a no-op), so the trainer can call it
    for every method.
    """
    cfg = getattr(model, "adapter_config", None)
    if accents is None or cfg is None or not cfg.experts:
        yield
        return
    idx = expert_index(model, accents)
    layers = [m for m in lora_layers(model).values() if m.n_experts > 1]
    for m in layers:
        m.route = idx.to(m.lora_A.device)
    try:
        yield
    finally:
        for m in layers:
            m.route = None


def mixture_weights(experts: Sequence[str], known: str | None = None,
                    d: float | None = None) -> torch.Tensor:
    """Inference weights over the experts.

    Accent unknown (``known=None``): uniform, ``1/N`` each. Accent known: ``1/d`` on its
    expert and ``(1 - 1/d)/(N - 1)`` on each other (the MAS-LoRA code; ``d = 1`` uses the
    expert alone, ``d = N`` is uniform; the paper found ``d = 2`` best). A known accent
    without an expert (an unseen accent) falls back to uniform.

    Returns
    -------
    torch.Tensor, shape (N,), summing to 1.
    """
    n = len(experts)
    if known is None or known not in experts or n == 1:
        return torch.full((n,), 1.0 / n)
    d = 2.0 if d is None else float(d)
    if d < 1:
        raise AdapterError(f"d must be >= 1, got {d}")
    w = torch.full((n,), (1 - 1 / d) / (n - 1))
    w[list(experts).index(known)] = 1 / d
    return w


def set_mixture(model: nn.Module, weights: torch.Tensor) -> None:
    """Use ``weights`` (N,) to mix the experts of every MAS-LoRA layer."""
    for m in lora_layers(model).values():
        if m.n_experts > 1:
            if weights.shape != (m.n_experts,):
                raise AdapterError(f"need {m.n_experts} mixture weights, got {tuple(weights.shape)}")
            m.mix = weights.to(m.lora_A)


_ADAM_STATE = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


@contextmanager
def hold_absent_experts(model: nn.Module, optimizer, accents: Sequence[str] | None):
    """Around ``optimizer.step()``: experts of no utterance in ``accents`` do not move.

    The experts are slices of one stacked parameter, so an expert missing from the batch
    gets a zero gradient, not ``None``, and AdamW would keep stepping it on stale momentum
    (and weight decay). The authors' separate modules get ``grad=None``, which AdamW skips.
    This restores the absent experts' weights and Adam moments after the step, which is
    what skipping them does, except that Adam's step counter (one per stacked parameter)
    still advances, so the bias correction of a long-absent expert is that of the later
    step (a small difference, only in the first ~1/(1-beta2) steps). A no-op for plain LoRA
    or when every expert is present.
    """
    cfg = getattr(model, "adapter_config", None)
    if accents is None or cfg is None or not cfg.experts:
        yield
        return
    present = set(expert_index(model, sorted(set(accents))).tolist())
    absent = [k for k in range(len(cfg.experts)) if k not in present]
    if not absent:
        yield
        return
    saved = []
    for m in lora_layers(model).values():
        if m.n_experts <= 1:
            continue
        idx = torch.tensor(absent, device=m.lora_A.device)
        for p in (m.lora_A, m.lora_B):
            st = optimizer.state.get(p, {})
            saved.append((p, idx, p.detach()[idx].clone(),
                          {k: st[k][idx].clone() for k in _ADAM_STATE
                           if isinstance(st.get(k), torch.Tensor) and st[k].shape == p.shape}))
    try:
        yield
    finally:
        with torch.no_grad():
            for p, idx, w, moments in saved:
                p[idx] = w
                st = optimizer.state.get(p, {})
                for k, v in moments.items():
                    st[k][idx] = v
