"""A faster, numerically equivalent form of an encoder for batched inference.

`inference_form(encoder)` rewrites the layers inside every ``nn.Sequential``:

- ``Conv2d -> BatchNorm2d`` becomes one convolution with the BatchNorm folded into its weights
  and bias (exact in eval mode, where BatchNorm is an affine map; floats round differently,
  about 1e-6 relative);
- ``ReLU | LeakyReLU -> MaxPool2d`` becomes ``MaxPool2d -> activation``: a non-decreasing
  activation commutes with max, so the result is identical, and the activation then runs on
  a tensor four times smaller.

Both remove a full-size intermediate tensor per block. On CPU, allocating those tensors (fresh
pages from the OS for every batch) costs as much as the convolutions themselves: for Conv-4 on
28x28 Omniglot images the rewrite embeds about 3x faster (`benchmarks/RESULTS.md`).

Modules the rewrite does not touch are shared with the original encoder, not copied, so a large
encoder with nothing to fold (a CLIP ViT) costs nothing extra.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# Largest intermediate tensor one CPU batch should produce: measured on a 2-core AVX-512
# container, Conv-4 on 28x28 images ran fastest at 16-64 images per batch (3-13 MiB for the
# first block's output) and 2-3x slower at 512.
CPU_BATCH_BYTES = 8 << 20
MAX_BATCH = 512
# A floor for large inputs: one 224 px EfficientNet-Lite0 image already has a ~4.8 MB
# intermediate, so the byte target alone gives batches of 1, which embedded 2.1 images/s on a
# 2-core EPYC against 7.7 at 32 and 9.2 at 64 (grey 28 px Fashion-MNIST resized in the encoder).
MIN_CPU_BATCH = 32


def _foldable_batchnorm(layer: nn.Module) -> bool:
    # In eval mode a BatchNorm with running statistics is a fixed affine map; without them it
    # normalises with batch statistics even in eval mode and cannot be folded.
    return isinstance(layer, nn.BatchNorm2d) and layer.track_running_stats and layer.running_mean is not None


def _monotone_activation(layer: nn.Module) -> bool:
    return isinstance(layer, nn.ReLU) or (isinstance(layer, nn.LeakyReLU) and layer.negative_slope >= 0)


def _rewrite_layers(layers: list[nn.Module]) -> list[nn.Module]:
    folded: list[nn.Module] = []
    for layer in layers:
        previous = folded[-1] if folded else None
        if isinstance(previous, nn.Conv2d) and _foldable_batchnorm(layer):
            folded[-1] = fuse_conv_bn_eval(copy.deepcopy(previous), layer)
        else:
            folded.append(layer)
    for i in range(len(folded) - 1):
        if _monotone_activation(folded[i]) and isinstance(folded[i + 1], nn.MaxPool2d):
            folded[i], folded[i + 1] = folded[i + 1], folded[i]
    return folded


def _rewrite(module: nn.Module) -> nn.Module:
    children = dict(module.named_children())
    rewritten = {name: _rewrite(child) for name, child in children.items()}
    if isinstance(module, nn.Sequential):
        layers = _rewrite_layers(list(rewritten.values()))
        unchanged = [id(m) for m in layers] == [id(m) for m in children.values()]
        return module if unchanged else nn.Sequential(*layers)
    if all(rewritten[name] is child for name, child in children.items()):
        return module
    # A shallow copy with its own child table, so that the original keeps its children.
    clone = copy.copy(module)
    clone._modules = dict(module._modules)
    clone._modules.update(rewritten)
    return clone


def inference_form(encoder: nn.Module) -> nn.Module:
    """The encoder rewritten for eval-mode inference (see the module docstring).

    Call it on an encoder in eval mode; the result computes the same function in eval mode
    only. Unchanged submodules are shared with `encoder`; the original is never modified.
    """
    return _rewrite(encoder)


def probe_batch_size(module: nn.Module, sample: torch.Tensor, target_bytes: int = CPU_BATCH_BYTES) -> int:
    """A power-of-two batch size whose largest intermediate tensor stays near `target_bytes`.

    `sample` is one input ``(1, ...)``; its forward pass records the output size of every leaf
    module. Returns a value in ``[1, MAX_BATCH]``.
    """
    largest = [sample.numel() * sample.element_size()]

    def record(_module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output.numel() * output.element_size())

    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    handles = [leaf.register_forward_hook(record) for leaf in leaves]
    try:
        with torch.no_grad():
            module(sample)
    finally:
        for handle in handles:
            handle.remove()
    batch = max(1, target_bytes // max(largest[0], 1))
    return min(MAX_BATCH, 1 << (batch.bit_length() - 1))


def cpu_batch_size(module: nn.Module, sample: torch.Tensor) -> int:
    """The CPU batch size `Encoder.encode_batched` uses: `probe_batch_size`, at least `MIN_CPU_BATCH`."""
    return max(MIN_CPU_BATCH, probe_batch_size(module, sample))


__all__ = ["cpu_batch_size", "inference_form", "probe_batch_size"]
