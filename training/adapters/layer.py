"""One LoRA linear layer that holds one or several experts.

With one expert it is ordinary LoRA (Hu et al., ICLR 2022, Eq. 3: ``h = W x + (alpha/r) B A x``).
With N experts it is a MAS-LoRA layer (arXiv 2505.20006): in training each sample goes only
through its own expert (:attr:`route`); at inference the experts' outputs are mixed with
fixed weights, ``h = W x + (alpha/r) sum_k w_k B_k A_k x``, which is linear in the weights and
so equals one merged matrix ``W + (alpha/r) sum_k w_k B_k A_k`` (:meth:`merged_weight`).

Why not peft: peft 0.21 routes a mixed batch with ``adapter_names`` only in eval mode
("Cannot pass `adapter_names` when the model is in training mode"), and its "linear"
``add_weighted_adapter`` mixes A and B separately, which is not the weighted delta-W.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LoRALinear"]


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus ``n_experts`` low-rank updates.

    Parameters
    ----------
    base : nn.Linear
        The frozen layer (its parameters are not touched).
    n_experts : int
    r, alpha : int, float
        Rank and scale; the update is scaled by ``alpha / r``.
    dropout : float
        Dropout on the LoRA branch's input (training only).
    init : {"normal", "gaussian", "kaiming"}
        Initialisation of ``lora_A``: ``"normal"`` std 1 (the MAS-LoRA authors' ``_init_lora``,
        ``nn.init.normal_(A.weight)``; the default), ``"gaussian"`` std ``1/r`` (peft's
        ``init_lora_weights="gaussian"``), ``"kaiming"`` Kaiming-uniform with ``a=sqrt(5)``
        (peft's default, ``nn.Linear``'s own init).

    The adapter parameters and the mixture are always float32, whatever the base layer's
    dtype (peft's ``autocast_adapter_dtype``): a bf16/fp16 adapter rounds small AdamW updates
    away and cannot be unscaled by ``GradScaler``. :meth:`forward` casts the branch's input to
    float32 (under autocast the matmuls still run in the autocast dtype) and its output back
    to the base output's dtype.

    Attributes
    ----------
    lora_A : Parameter, shape (n_experts, r, in_features)
        float32, initialised as ``init`` says.
    lora_B : Parameter, shape (n_experts, out_features, r)
        Initialised to zeros, so a fresh adapter leaves the model unchanged.
    route : LongTensor of shape (batch,) or None
        When set, sample ``i`` uses only expert ``route[i]`` (one-hot routing); gradients
        reach no other expert.
    mix : Tensor of shape (n_experts,)
        Expert weights when :attr:`route` is None (uniform by default).
    """

    def __init__(self, base: nn.Linear, n_experts: int = 1, r: int = 16, alpha: float = 16,
                 dropout: float = 0.05, init: str = "normal") -> None:
        super().__init__()
        if n_experts < 1 or r < 1:
            raise ValueError(f"need n_experts >= 1 and r >= 1, got {n_experts}, {r}")
        self.base = base
        self.n_experts, self.r, self.alpha = int(n_experts), int(r), float(alpha)
        self.scaling = self.alpha / self.r
        dev, f32 = base.weight.device, torch.float32
        a = torch.empty(n_experts, r, base.in_features, dtype=f32, device=dev)
        if init == "normal":
            nn.init.normal_(a, std=1.0)
        elif init == "gaussian":
            nn.init.normal_(a, std=1.0 / r)
        elif init == "kaiming":
            for k in range(n_experts):
                nn.init.kaiming_uniform_(a[k], a=5 ** 0.5)
        else:
            raise ValueError(f"init must be 'normal', 'gaussian' or 'kaiming', got {init!r}")
        self.lora_A = nn.Parameter(a)
        self.lora_B = nn.Parameter(torch.zeros(n_experts, base.out_features, r, dtype=f32,
                                               device=dev))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.register_buffer("mix", torch.full((n_experts,), 1.0 / n_experts, dtype=f32,
                                               device=dev), persistent=False)
        self.route: torch.Tensor | None = None

    def _apply(self, fn, recurse=True):
        # model.half() / .to(bfloat16) must not cast the adapters (see the class doc)
        super()._apply(fn, recurse)
        for name in ("lora_A", "lora_B"):
            p = getattr(self, name)
            if p.dtype != torch.float32:
                p.data = p.data.float()
                if p.grad is not None:
                    p.grad.data = p.grad.data.float()
        if self.mix.dtype != torch.float32:
            self.mix = self.mix.float()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, ..., in_features) -> (batch, ..., out_features)."""
        y = self.base(x)
        xd = self.dropout(x).to(self.lora_A.dtype)
        if self.route is not None:
            if self.route.shape[0] != x.shape[0]:
                raise ValueError(f"route has {self.route.shape[0]} entries for a batch of "
                                 f"{x.shape[0]}")
            a, b = self.lora_A[self.route], self.lora_B[self.route]  # (batch, r, in), (batch, out, r)
            h = torch.einsum("b...i,bri->b...r", xd, a)
            delta = torch.einsum("b...r,bor->b...o", h, b)
        elif self.n_experts == 1:
            delta = (xd @ self.lora_A[0].T) @ self.lora_B[0].T
        else:
            h = torch.einsum("...i,kri->...kr", xd, self.lora_A)
            delta = torch.einsum("...kr,kor,k->...o", h, self.lora_B.to(h.dtype),
                                 self.mix.to(h.dtype))
        return y + (self.scaling * delta).to(y.dtype)

    @torch.no_grad()
    def merged_weight(self, mix: torch.Tensor | None = None) -> torch.Tensor:
        """``W + (alpha/r) sum_k mix_k B_k A_k``, shape (out_features, in_features)."""
        mix = self.mix if mix is None else mix.to(self.lora_A)
        delta = torch.einsum("k,kor,kri->oi", mix, self.lora_B, self.lora_A)
        return (self.base.weight.float() + self.scaling * delta).to(self.base.weight.dtype)

    @torch.no_grad()
    def merged_linear(self, mix: torch.Tensor | None = None) -> nn.Linear:
        """A plain ``nn.Linear`` computing this layer's mixture at inference cost of the base."""
        out = nn.Linear(self.base.in_features, self.base.out_features,
                        bias=self.base.bias is not None, device=self.base.weight.device,
                        dtype=self.base.weight.dtype)
        out.weight.copy_(self.merged_weight(mix))
        if self.base.bias is not None:
            out.bias.copy_(self.base.bias)
        return out

    def extra_repr(self) -> str:
        return f"n_experts={self.n_experts}, r={self.r}, alpha={self.alpha}"
