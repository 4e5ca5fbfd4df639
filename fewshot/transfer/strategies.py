"""Blocks of an encoder, and the fine-tuning strategies built on them.

A *block* is a stage of the encoder, input side first: Conv-4's four conv blocks,
ResNet-12's four residual stages, a CLIP vision transformer's residual attention blocks.
Strategies act on blocks:

- ``full``: every block trains.
- ``partial``: the first ``freeze`` blocks stay frozen, the rest train.
- ``gradual``: the head trains alone first, then blocks unfreeze one at a time from the
  top (ULMFiT's gradual unfreezing) on a schedule.

Discriminative learning rates: block ``i`` of ``n`` trains at ``lr * decay ** (n - 1 - i)``,
so blocks near the input (generic features) move least; the new head trains at ``head_lr``.

Parameters outside every block (a CLIP stem's patch embedding, a final norm or projection)
are attached to the first block if they come before the blocks in the module's parameter
order, to the last block otherwise, except that parameters of final norms/projections
(names matching `TOP_NAMES`) always go with the last block.
"""

from __future__ import annotations

import re

from torch import nn

from fewshot.errors import FewshotError

STRATEGIES = ("full", "partial", "gradual")

#: Where known encoders keep their blocks, tried in order (attribute paths).
BLOCK_PATHS = (
    "blocks",  # Conv-4, ResNet-12 (fewshot), timm ViTs
    "layers",
    "model.visual.transformer.resblocks",  # open_clip ViT wrapped in an encoder
    "visual.transformer.resblocks",
    "transformer.resblocks",
    "model.visual.trunk.blocks",
    "model.visual",  # open_clip ModifiedResNet: handled by the layer1..4 rule below
)

TOP_NAMES = re.compile(r"(^|\.)(ln_post|proj|norm|fc_norm|head|attnpool)(\.|$)")


def _get_path(module: nn.Module, path: str) -> nn.Module | None:
    for part in path.split("."):
        module = getattr(module, part, None)
        if not isinstance(module, nn.Module):
            return None
    return module


def _with_params(modules) -> list[nn.Module]:
    return [m for m in modules if any(True for _ in m.parameters())]


def encoder_blocks(encoder: nn.Module) -> list[nn.Module]:
    """The encoder's blocks, input side first.

    An encoder may define ``block_modules() -> list[nn.Module]`` to say it; otherwise known
    layouts are recognised (`BLOCK_PATHS`, ResNet ``layer1..layer4``), and the fallback is
    the encoder's top-level children that hold parameters.
    """
    if hasattr(encoder, "block_modules"):
        return list(encoder.block_modules())
    for path in BLOCK_PATHS:
        found = _get_path(encoder, path)
        if found is None:
            continue
        if isinstance(found, (nn.Sequential, nn.ModuleList)) and len(_with_params(found)) >= 2:
            return _with_params(found)
        stages = [getattr(found, f"layer{i}", None) for i in range(1, 5)]
        if all(isinstance(s, nn.Module) for s in stages):
            return stages
    children = _with_params(encoder.children())
    if len(children) == 1 and len(_with_params(children[0].children())) >= 2:
        return _with_params(children[0].children())
    return children


def image_tower(encoder: nn.Module) -> nn.Module:
    """The part of the encoder that embeds images: a CLIP encoder's ``model.visual`` (its text
    tower and logit scale are never fine-tuned), otherwise the encoder itself."""
    visual = _get_path(encoder, "model.visual")
    return visual if visual is not None and hasattr(encoder, "encode_text") else encoder


def block_parameters(encoder: nn.Module) -> list[list[nn.Parameter]]:
    """The image tower's parameters, grouped by block (see the module docstring for leftovers)."""
    blocks = encoder_blocks(encoder)
    tower = image_tower(encoder)
    if not blocks:
        return [list(tower.parameters())]
    owner = {}
    for i, block in enumerate(blocks):
        for p in block.parameters():
            owner.setdefault(id(p), i)
    groups: list[list[nn.Parameter]] = [[] for _ in blocks]
    seen_block = False
    for name, p in tower.named_parameters():
        if id(p) in owner:
            groups[owner[id(p)]].append(p)
            seen_block = True
        elif TOP_NAMES.search(name) or seen_block:
            groups[-1].append(p)
        else:
            groups[0].append(p)
    return groups


def set_trainable_blocks(encoder: nn.Module, n_trainable: int) -> None:
    """Freeze all encoder blocks but the last ``n_trainable`` (0 freezes the whole encoder).

    Parameters outside the image tower (a CLIP text tower) are always frozen.
    """
    encoder.requires_grad_(False)
    groups = block_parameters(encoder)
    first = len(groups) - max(0, min(n_trainable, len(groups)))
    for i, group in enumerate(groups):
        for p in group:
            p.requires_grad_(i >= first)


def trainable_blocks_at(strategy: str, n_blocks: int, freeze: int, epoch: int, unfreeze_every: int) -> int:
    """How many top blocks train in ``epoch`` (0-based) under ``strategy``.

    ``partial``: ``n_blocks - freeze``; ``full``: all; ``gradual``: none for the first
    ``unfreeze_every`` epochs (head only), then one more every ``unfreeze_every`` epochs, never
    more than ``n_blocks - freeze``.
    """
    if strategy not in STRATEGIES:
        raise FewshotError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if not 0 <= freeze <= n_blocks:
        raise FewshotError(f"--freeze {freeze} but the encoder has {n_blocks} blocks: use 0..{n_blocks}")
    if strategy == "full":
        return n_blocks
    limit = n_blocks - freeze
    if strategy == "partial":
        return limit
    return min(limit, epoch // max(1, unfreeze_every))


def parameter_groups(
    encoder: nn.Module, head: nn.Module, lr: float, head_lr: float, decay: float, weight_decay: float
) -> list[dict]:
    """Optimizer groups: one per block with discriminative rates, plus the head.

    Block ``i`` of ``n`` gets ``lr * decay ** (n - 1 - i)``. Frozen parameters stay in their
    group (their gradients are None, so the optimiser skips them) so that unfreezing later
    needs no new optimiser.
    """
    groups = block_parameters(encoder)
    n = len(groups)
    out = [
        {"params": group, "lr": lr * decay ** (n - 1 - i), "weight_decay": weight_decay, "name": f"block{i}"}
        for i, group in enumerate(groups)
        if group
    ]
    out.append(
        {"params": list(head.parameters()), "lr": head_lr, "weight_decay": weight_decay, "name": "head"}
    )
    return out


def frozen_state(encoder: nn.Module) -> list[bool]:
    """Per block: True when every parameter of the block is frozen (for tests and logs)."""
    return [all(not p.requires_grad for p in group) for group in block_parameters(encoder)]


def freeze_batchnorm_stats(module: nn.Module, every: bool = False) -> None:
    """Put BatchNorm layers whose parameters are all frozen (``every``: all of them) into eval
    mode: their running statistics stay fixed and normalise the batch."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if every or (params and not any(p.requires_grad for p in params)):
                m.eval()


__all__ = [
    "STRATEGIES",
    "block_parameters",
    "encoder_blocks",
    "freeze_batchnorm_stats",
    "frozen_state",
    "parameter_groups",
    "set_trainable_blocks",
    "trainable_blocks_at",
]
