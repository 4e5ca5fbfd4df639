"""Conv-4: the standard few-shot backbone, 4 x [conv 3x3 (64), BatchNorm, ReLU, maxpool 2]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.encoders import ENCODERS
from fewshot.encoders.base import Encoder
from fewshot.errors import FewshotError

MIN_IMAGE_SIZE = 16  # four 2x2 max-pools: a smaller side shrinks to nothing


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


@ENCODERS.register("conv4")
class Conv4(Encoder):
    """Conv-4 encoder.

    Args:
        in_channels: 1 for Omniglot, 3 for colour images.
        hidden: channels of every block (64 in the papers).
        image_size: input height = width; 28x28 gives a ``64``-d embedding
            (``hidden * (image_size // 16) ** 2``).

    Shapes: ``(n, in_channels, image_size, image_size)`` -> ``(n, embed_dim)``. The embedding is
    the last block's feature map flattened: ``feature_shape`` ``(hidden, side, side)`` is that
    map's shape, so ``z.view(-1, *feature_shape)`` recovers it (Relation Networks score maps).
    """

    sized_by_data = {"in_channels": "channels", "image_size": "side"}

    def __init__(self, in_channels: int = 1, hidden: int = 64, image_size: int = 28) -> None:
        super().__init__()
        if image_size < MIN_IMAGE_SIZE:
            raise FewshotError(
                f"Conv-4 needs images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels "
                f"(four 2x2 max-pools), got image size {image_size}"
            )
        self.in_channels, self.hidden, self.image_size = in_channels, hidden, image_size
        self.blocks = nn.Sequential(
            conv_block(in_channels, hidden),
            conv_block(hidden, hidden),
            conv_block(hidden, hidden),
            conv_block(hidden, hidden),
        )
        side = image_size
        for _ in range(4):
            side //= 2
        self.embed_dim = hidden * max(side, 1) ** 2
        self.feature_shape = (hidden, max(side, 1), max(side, 1))
        self.input_size = (in_channels, image_size, image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).flatten(1)

    def grouped_forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """T tasks at once, each with its own weights: ``(T, n, C, H, W)`` -> ``(T, n, embed_dim)``.

        `params` maps this encoder's parameter names to tensors with a leading task axis
        ``(T, ...)`` (MAML's ``grouped`` strategy). The tasks become convolution groups:
        channels are laid out task-major, ``(n, T*C, H, W)``, so BatchNorm's per-channel
        statistics are per-task statistics. BatchNorm uses batch statistics only.
        """
        tasks, n = x.shape[:2]
        h = x.transpose(0, 1).reshape(n, tasks * x.shape[2], *x.shape[3:])
        for name, layer in self.named_modules():
            if isinstance(layer, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d)):
                h = _grouped_layer(layer, params.get(f"{name}.weight"), params.get(f"{name}.bias"), h, tasks)
        return h.reshape(n, tasks, -1).transpose(0, 1)

    def config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "hidden": self.hidden,
            "image_size": self.image_size,
        }


def _grouped_layer(
    layer: nn.Module, weight: torch.Tensor | None, bias: torch.Tensor | None, h: torch.Tensor, tasks: int
) -> torch.Tensor:
    """One Conv-4 layer on task-major channels ``(n, T*C, H, W)``, with per-task ``(T, ...)`` weights."""
    weight = None if weight is None else weight.reshape(-1, *weight.shape[2:])
    bias = None if bias is None else bias.reshape(-1)
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(h, weight, bias, layer.stride, layer.padding, layer.dilation, tasks * layer.groups)
    if isinstance(layer, nn.BatchNorm2d):
        return F.batch_norm(h, None, None, weight, bias, training=True, eps=layer.eps)
    if isinstance(layer, nn.ReLU):
        return F.relu(h)
    return F.max_pool2d(h, layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)
