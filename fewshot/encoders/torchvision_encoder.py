"""Any torchvision classification architecture as an `Encoder`:
``--encoder torchvision:mobilenet_v3_small``.

Weights (``pretrained``): ``"default"`` (the architecture's ``DEFAULT`` weights enum), an enum
name (``IMAGENET1K_V1``), a local ``.safetensors``/``.pth`` file (read without unpickling), or
``None``/``"none"`` (random weights, seeded by `fewshot.build`). Named weights come from the
torch hub cache, else are downloaded when download.pytorch.org answers; offline without them:
one line saying where to put the file. Preprocessing is the weights' own ``transforms()``
(resize, crop, mean/std, interpolation). The embedding is the input of the last linear layer
(the pooled pre-logits features), which is removed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from fewshot.encoders import ENCODERS
from fewshot.encoders.pretrained import (
    ImageNetEncoder,
    WeightsUnavailableError,
    load_into,
    load_weights_file,
    reachable,
    wants_weights,
    weights_file,
)
from fewshot.errors import FewshotError
from fewshot.preprocessing import INTERPOLATIONS, Preprocessing

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def weights_enum(model: str, pretrained: str | None):
    """The torchvision weights ``pretrained`` names (``"default"``: ``DEFAULT``), or for random
    weights the default enum (its preprocessing), or None when the model has none."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(model)
    except (ValueError, KeyError):
        return None
    if not wants_weights(pretrained) or weights_file(pretrained) or pretrained == "default":
        return enum.DEFAULT
    try:
        return enum[str(pretrained)]
    except KeyError:
        raise FewshotError(
            f"--pretrained {pretrained}: torchvision {model} has weights {', '.join(w.name for w in enum)}"
        ) from None


def torchvision_preprocessing(weights: Any, image_size: int | None) -> Preprocessing:
    """The weights' own evaluation transform as a record (ImageNet defaults without weights)."""
    crop, resize, mean, std, interpolation = 224, 256, IMAGENET_MEAN, IMAGENET_STD, "bilinear"
    if weights is not None:
        t = weights.transforms()
        crop, resize = int(t.crop_size[0]), int(t.resize_size[0])
        mean, std, interpolation = tuple(t.mean), tuple(t.std), t.interpolation.value
    return Preprocessing(
        image_size=int(image_size or crop),
        channels=3,
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        resize="crop",
        interpolation=interpolation if interpolation in INTERPOLATIONS else "bilinear",
        crop_pct=crop / resize,
        normalize_in="encoder",
    )


def _state_of(model: str, weights: Any) -> tuple[dict, str]:
    """The named weights' state dict from the torch hub cache or a download."""
    import torch.hub

    if weights is None:
        raise WeightsUnavailableError(
            f"torchvision {model} has no pretrained weights: pass --pretrained FILE or --pretrained none"
        )
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if cached.is_file():
        return load_weights_file(cached), f"torchvision {weights} ({cached})"
    if not reachable("download.pytorch.org"):
        raise WeightsUnavailableError(
            f"no weights for torchvision:{model} on this machine and no network to download them: "
            f"download {weights.url} into {cached.parent} (or pass --pretrained FILE, or "
            "--pretrained none for random weights)"
        )
    return weights.get_state_dict(progress=False), f"torchvision {weights}"


def _drop_last_linear(network: nn.Module) -> tuple[nn.Linear, str]:
    """Replace the last ``nn.Linear`` (the classifier) by the identity: ``(it, its name)``."""
    name, last = next(
        ((n, m) for n, m in reversed(list(network.named_modules())) if isinstance(m, nn.Linear))
    )
    parent_name, _, child = name.rpartition(".")
    parent = network.get_submodule(parent_name) if parent_name else network
    setattr(parent, child, nn.Identity())
    return last, name


@ENCODERS.register("torchvision")
class TorchvisionEncoder(ImageNetEncoder):
    """A torchvision architecture (``model``, e.g. ``resnet18``), pooled pre-logits features.

    Args:
        model: a name of ``torchvision.models.list_models()``.
        pretrained: ``"default"``, a weights name, a weights file, or None/``"none"``.
        layer: a submodule name whose output, globally average-pooled, is the embedding.
        image_size: input side (default: the weights' crop size).
        pretrained_from: where the weights came from (recorded by `config`; a checkpoint
            rebuilds without downloading, its file holds the weights).

    Shapes: ``(n, 1 or 3, H, W)`` in ``[0, 1]`` -> ``(n, embed_dim)``.
    """

    source = "torchvision, https://github.com/pytorch/vision"
    training_data = "ImageNet-1k for the DEFAULT weights of most architectures"
    licence = "torchvision code BSD-3-Clause; weights: see the torchvision docs (ImageNet-1k terms)"

    def __init__(
        self,
        model: str = "resnet18",
        pretrained: str | None = "default",
        layer: str | None = None,
        image_size: int | None = None,
        pretrained_from: str | None = None,
    ) -> None:
        import torchvision

        super().__init__()
        if model not in torchvision.models.list_models():
            raise FewshotError(
                f"unknown torchvision architecture {model!r}; see torchvision.models.list_models()"
            )
        weights = weights_enum(model, pretrained)
        network = torchvision.models.get_model(model, weights=None)
        self.model_name, self.image_size, self.pretrained_from = model, image_size, pretrained_from
        self.pretrained = None
        if wants_weights(pretrained):
            path = weights_file(pretrained)
            state, self.pretrained = (
                (load_weights_file(path), str(path)) if path else _state_of(model, weights)
            )
            load_into(network, state, f"--pretrained {pretrained}")
        head, _ = _drop_last_linear(network)
        self.network, self.embed_dim = network, int(head.in_features)
        prep = torchvision_preprocessing(weights, image_size)
        self._finish(prep, layer, [n for n, _ in network.named_children()])

    def card(self) -> dict[str, Any]:
        return {**super().card(), "architecture": self.model_name}

    def config(self) -> dict:
        return {
            "model": self.model_name,
            "pretrained": None,
            "layer": self.layer,
            "image_size": self.image_size,
            "pretrained_from": self.weights_from,
        }
