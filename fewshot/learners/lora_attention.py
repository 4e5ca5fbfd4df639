"""Low-rank adapters (LoRA, Hu et al. 2022) on `torch.nn.MultiheadAttention`, kept outside the model.

`LoRAAttention` holds the factors of one attention layer: for each adapted projection
``p`` of ``q``, ``k``, ``v`` (and optionally ``o``), ``A_p`` ``(r, E)`` (Kaiming-uniform) and
``B_p`` ``(E, r)`` (zeros), so an adapter starts as the identity:

    W_p' = W_p + (alpha / r) * B_p @ A_p,  applied as  W_p x + (alpha / r) * B_p A_p dropout(x)

`attached(model, adapters)` swaps the forward of the adapted layers for the duration of a
block: the model's modules and weights are never replaced or written (so frozen weights stay
bit-identical and another learner sharing the encoder is unaffected). ``merged=True`` runs
PyTorch's own attention with the merged weights (``W + scale * B @ A``), the inference form;
`merge_into` writes them into (a copy of) a model. Merged and unmerged agree (dropout is
off in eval mode).
"""

from __future__ import annotations

import contextlib
import math
import types
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

PROJECTIONS = ("q", "k", "v", "o")


class LoRAAttention(nn.Module):
    """LoRA factors for one ``nn.MultiheadAttention`` of width ``E``."""

    def __init__(
        self, embed_dim: int, rank: int, alpha: float, dropout: float, targets: Sequence[str]
    ) -> None:
        super().__init__()
        self.targets = tuple(targets)
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout)
        self.A = nn.ParameterDict({p: nn.Parameter(torch.empty(rank, embed_dim)) for p in self.targets})
        self.B = nn.ParameterDict({p: nn.Parameter(torch.zeros(embed_dim, rank)) for p in self.targets})
        for a in self.A.values():
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))

    def delta(self, p: str) -> torch.Tensor | None:
        """``scale * B_p @ A_p`` ``(E, E)``, or None for a projection that is not adapted."""
        return self.scaling * (self.B[p] @ self.A[p]) if p in self.targets else None

    def project(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, p: str
    ) -> torch.Tensor:
        """``x @ W.T + b`` plus the low-rank path (unmerged, with dropout on its input)."""
        out = F.linear(x, weight, bias)
        if p in self.targets:
            out = out + self.scaling * F.linear(F.linear(self.dropout(x), self.A[p]), self.B[p])
        return out

    def merged_weights(self, mha: nn.MultiheadAttention) -> tuple[torch.Tensor, torch.Tensor]:
        """``(in_proj_weight (3E, E), out_proj.weight (E, E))`` with the adapters merged in."""
        zero = torch.zeros_like(mha.out_proj.weight)
        deltas = [self.delta(p) if p in self.targets else zero for p in "qkv"]
        in_proj = mha.in_proj_weight + torch.cat(deltas).to(mha.in_proj_weight.dtype)
        out = mha.out_proj.weight + (self.delta("o") if "o" in self.targets else zero)
        return in_proj, out


def _unmerged_forward(lora: LoRAAttention, mha: nn.MultiheadAttention):
    """A replacement for ``mha.forward`` (need_weights unsupported: open_clip never asks)."""

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None, **_):
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        (n, lq, e), lk, heads = query.shape, key.shape[1], self.num_heads
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        q = lora.project(query, wq, bq, "q").view(n, lq, heads, -1).transpose(1, 2)
        k = lora.project(key, wk, bk, "k").view(n, lk, heads, -1).transpose(1, 2)
        v = lora.project(value, wv, bv, "v").view(n, lk, heads, -1).transpose(1, 2)
        mask = _combined_mask(attn_mask, key_padding_mask, q.dtype)
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        out = out.transpose(1, 2).reshape(n, lq, e)
        out = lora.project(out, self.out_proj.weight, self.out_proj.bias, "o")
        return (out if self.batch_first else out.transpose(0, 1)), None

    return types.MethodType(forward, mha)


def _combined_mask(attn_mask, key_padding_mask, dtype) -> torch.Tensor | None:
    """An additive float mask from an ``attn_mask`` (bool: True = masked, or float) and a padding mask."""
    mask = None
    if attn_mask is not None:
        mask = (
            torch.zeros_like(attn_mask, dtype=dtype).masked_fill(attn_mask, float("-inf"))
            if (attn_mask.dtype == torch.bool)
            else attn_mask.to(dtype)
        )
    if key_padding_mask is not None:
        pad = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
        pad = pad.masked_fill(key_padding_mask.bool(), float("-inf"))[:, None, None, :]
        mask = pad if mask is None else mask + pad
    return mask


def _merged_forward(lora: LoRAAttention, mha: nn.MultiheadAttention):
    """A replacement for ``mha.forward``: PyTorch's attention with the merged weights."""

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None, **kwargs):
        in_proj, out_weight = lora.merged_weights(self)
        if self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        out, weights = F.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, in_proj, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, out_weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask,
        )  # fmt: skip
        return (out.transpose(0, 1) if self.batch_first else out), weights

    return types.MethodType(forward, mha)


def attention_layers(model: nn.Module, prefixes: Sequence[str] = ("",)) -> dict[str, nn.MultiheadAttention]:
    """Every ``nn.MultiheadAttention`` of ``model`` whose name starts with one of ``prefixes``."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.MultiheadAttention) and any(name.startswith(p) for p in prefixes)
    }


def adapters_for(
    layers: dict[str, nn.MultiheadAttention], rank: int, alpha: float, dropout: float, targets: Sequence[str]
) -> nn.ModuleDict:
    """One `LoRAAttention` per layer (keys: layer names with ``.`` as ``/``), on each layer's device."""
    return nn.ModuleDict(
        {
            name.replace(".", "/"): LoRAAttention(mha.embed_dim, rank, alpha, dropout, targets).to(
                mha.in_proj_weight.device
            )
            for name, mha in layers.items()
        }
    )


@contextlib.contextmanager
def attached(model: nn.Module, adapters: nn.ModuleDict, merged: bool = False) -> Iterator[None]:
    """Run ``model``'s adapted attention layers with ``adapters`` inside the block."""
    modules = dict(model.named_modules())
    patched = []
    try:
        for key, lora in adapters.items():
            mha = modules[key.replace("/", ".")]
            mha.forward = (_merged_forward if merged else _unmerged_forward)(lora, mha)
            patched.append(mha)
        yield
    finally:
        for mha in patched:
            del mha.forward  # back to the class's forward


@torch.no_grad()
def merge_into(model: nn.Module, adapters: nn.ModuleDict) -> nn.Module:
    """Write every adapter into ``model``'s weights (give it a copy: `copy.deepcopy`); returns it."""
    modules = dict(model.named_modules())
    for key, lora in adapters.items():
        mha = modules[key.replace("/", ".")]
        in_proj, out_weight = lora.merged_weights(mha)
        mha.in_proj_weight.copy_(in_proj)
        mha.out_proj.weight.copy_(out_weight)
    return model
