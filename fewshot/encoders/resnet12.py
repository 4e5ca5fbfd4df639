"""ResNet-12: the residual backbone of TADAM, MetaOptNet and most few-shot work since 2018.

Four residual blocks; each is 3 x [conv 3x3, BatchNorm, LeakyReLU(0.1)] (the last activation
after the residual sum), a 1x1 conv + BatchNorm shortcut, and a 2x2 max-pool. Channels
64-160-320-640 by default; a global average pool gives a ``channels[-1]``-d embedding
whatever the input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fewshot.encoders import ENCODERS
from fewshot.encoders.base import Encoder
from fewshot.encoders.conv4 import MIN_IMAGE_SIZE
from fewshot.errors import FewshotError


def _conv_bn(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels)]


class ResidualBlock(nn.Module):
    """``(n, in, h, w)`` -> ``(n, out, h // 2, w // 2)``."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(in_channels, out_channels),
            nn.LeakyReLU(negative_slope),
            *_conv_bn(out_channels, out_channels),
            nn.LeakyReLU(negative_slope),
            *_conv_bn(out_channels, out_channels),
        )
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.activation = nn.LeakyReLU(negative_slope)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.activation(self.body(x) + self.shortcut(x)))


@ENCODERS.register("resnet12")
class ResNet12(Encoder):
    """ResNet-12 encoder.

    Args:
        in_channels: 1 for Omniglot, 3 for colour images.
        channels: output channels of the four blocks (64, 160, 320, 640 in the literature;
            64, 128, 256, 512 in some papers).
        image_size: the input side the encoder is meant for (84 for miniImageNet, 28 for
            Omniglot); recorded in checkpoints. The global pool accepts any side of at
            least 16 pixels.

    Shapes: ``(n, in_channels, h, w)`` -> ``(n, channels[-1])``.
    """

    sized_by_data = {"in_channels": "channels", "image_size": "side"}

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (64, 160, 320, 640),
        image_size: int = 84,
    ) -> None:
        super().__init__()
        if image_size < MIN_IMAGE_SIZE:
            raise FewshotError(
                f"ResNet-12 needs images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels "
                f"(four 2x2 max-pools), got image size {image_size}"
            )
        channels = [int(c) for c in channels]
        if len(channels) != 4 or min(channels) < 1:
            raise ValueError(f"ResNet-12 needs four positive channel counts, got {channels}")
        self.in_channels, self.channels, self.image_size = in_channels, channels, image_size
        widths = [in_channels, *channels]
        self.blocks = nn.Sequential(*(ResidualBlock(a, b) for a, b in zip(widths, widths[1:], strict=False)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed_dim = channels[-1]
        self.input_size = (in_channels, image_size, image_size)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu", a=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.blocks(x)).flatten(1)

    def config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "channels": list(self.channels),
            "image_size": self.image_size,
        }
