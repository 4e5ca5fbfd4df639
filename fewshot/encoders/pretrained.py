"""What the ImageNet encoders (timm, torchvision, EfficientNet-Lite) share.

- `ImageInput`: ``[0, 1]`` images of any side, grey or RGB -> the network's input (grey
  replicated to RGB, resized to the model's side, normalised with the model's mean/std). It is
  the first layer of every such encoder, so tensor data sets (Omniglot, Fashion-MNIST) and PIL
  images (through `ImageNetEncoder.preprocess`, which resizes and crops but leaves
  normalisation to the encoder) reach the network prepared the same way in every command.
- `load_weights_file`: a local ``.safetensors`` (or ``.pth``/``.bin`` read with
  ``torch.load(weights_only=True)``: nothing is unpickled).
- `ImageNetEncoder`: the base class; subclasses build a network whose output is the pooled
  embedding, and declare their model card (`model_card`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.encoders.base import Encoder
from fewshot.errors import FewshotError, ModelUnavailableError
from fewshot.preprocessing import Preprocessing

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
NO_WEIGHTS = (None, "none", "random")

STAGE_CONTAINERS = ("blocks", "stages", "features", "layers")


class WeightsUnavailableError(ModelUnavailableError):
    """Pretrained weights are neither in a local file nor in a cache, and cannot be downloaded."""


def wants_weights(pretrained: str | None) -> bool:
    """False for ``None``/``"none"``/``"random"``: random weights."""
    return not (pretrained is None or str(pretrained).lower() in NO_WEIGHTS)


def weights_file(pretrained: str | None) -> Path | None:
    """``pretrained`` as a local weights file, or None when it is a tag or name."""
    if not wants_weights(pretrained):
        return None
    path = Path(str(pretrained)).expanduser()
    if path.suffix.lower() in WEIGHT_SUFFIXES or os.sep in str(pretrained):
        if not path.is_file():
            raise WeightsUnavailableError(f"--pretrained {pretrained}: no such weights file")
        return path
    return None


def load_weights_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``.pth``/``.bin`` (``weights_only=True``);
    a ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise WeightsUnavailableError(f"--pretrained {path}: unreadable weights file ({err})") from err
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsUnavailableError(f"--pretrained {path}: not a state dict of tensors")
    return state


def load_into(network: nn.Module, state: dict[str, torch.Tensor], what: str, optional: tuple = ()) -> None:
    """Copy ``state`` into ``network``; refuse a file that leaves weights out (one line).
    Keys starting with a name in ``optional`` (a classifier the encoder dropped) may differ."""
    try:
        missing, unexpected = network.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes that differ
        detail = " ".join(str(err).split("\n")[1:2]).strip()[:200]
        raise WeightsUnavailableError(f"{what} does not fit this architecture ({detail})") from err
    missing = [k for k in missing if not k.startswith(optional)]
    unexpected = [k for k in unexpected if not k.startswith(optional)]
    if missing or unexpected:
        raise WeightsUnavailableError(
            f"{what} does not fit this architecture ({len(missing)} weights missing, e.g. "
            f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})"
        )


def reachable(host: str, timeout: float = 3.0) -> bool:
    """Whether ``host:443`` answers (False at once with ``HF_HUB_OFFLINE=1``)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("FEWSHOT_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


class ImageInput(nn.Module):
    """``(n, 1 or 3, h, w)`` images in ``[0, 1]`` -> ``(n, 3, side, side)`` normalised.

    Grey images are replicated to three channels; other sides are resized (bilinear, with
    antialiasing when shrinking), so small square tensor data sets fit an ImageNet network.
    """

    def __init__(self, side: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.side = int(side)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise FewshotError(f"images have {x.shape[1]} channels: this encoder reads 1 (grey) or 3 (RGB)")
        if tuple(x.shape[-2:]) != (self.side, self.side):
            shrink = x.shape[-1] > self.side
            x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", antialias=shrink)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class _Captured(Exception):
    """Raised by the layer hook once the wanted layer has run: the rest is not computed."""


def pooled(h: torch.Tensor) -> torch.Tensor:
    """A layer's output -> ``(n, d)``: global average over space ``(n, C, H, W)`` or tokens
    ``(n, L, C)``."""
    if h.ndim == 4:
        return h.mean(dim=(2, 3))
    return h.mean(dim=1) if h.ndim == 3 else h.flatten(1)


def layer_output(network: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """The output of ``network``'s submodule ``layer`` for input ``x``, pooled to ``(n, d)``;
    the layers after it do not run."""
    module = dict(network.named_modules())[layer]
    box: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        box.append(output[0] if isinstance(output, (tuple, list)) else output)
        raise _Captured

    handle = module.register_forward_hook(hook)
    try:
        network(x)
    except _Captured:
        pass
    finally:
        handle.remove()
    return pooled(box[0])


def check_layer(network: nn.Module, layer: str | None, suggestions: list[str]) -> None:
    if layer is not None and layer not in dict(network.named_modules()):
        raise FewshotError(
            f"layer={layer!r} is not a layer of this network; e.g. {', '.join(suggestions[:8])}"
        )


class ImageNetEncoder(Encoder):
    """An ImageNet network as an `Encoder`: ``[0, 1]`` images -> pooled features ``(n, d)``.

    Subclasses build ``self.network`` (its output: the pooled embedding, classifier removed)
    and call `_finish` with the model's own preprocessing. ``layer`` names a submodule whose
    output, globally average-pooled, is the embedding instead.

    Class attributes say what `fewshot models` shows: ``source``, ``training_data``,
    ``licence`` (of the weights; refined per architecture by `card`).
    """

    source: str = ""
    training_data: str = ""
    licence: str = ""

    network: nn.Module
    layer: str | None = None
    model_name: str = ""
    pretrained: str | None = None
    pretrained_from: str | None = None

    def _finish(self, prep: Preprocessing, layer: str | None, suggestions: list[str]) -> None:
        """Set the input layer, ``input_size`` and ``embed_dim`` (measured for a ``layer``)."""
        check_layer(self.network, layer, suggestions)
        self.layer = layer
        self.prep = prep
        self.input = ImageInput(prep.image_size, prep.mean or (0.0,) * 3, prep.std or (1.0,) * 3)
        self.input_size = (3, prep.image_size, prep.image_size)
        if layer is not None:
            was = self.network.training
            self.network.eval()
            with torch.no_grad():
                self.embed_dim = int(self(torch.zeros(1, *self.input_size)).shape[1])
            self.network.train(was)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input(x)
        return self.network(h) if self.layer is None else layer_output(self.network, self.layer, h)

    def block_modules(self) -> list[nn.Module]:
        """The network's blocks, input side first, for the fine-tuning strategies: its top-level
        modules with weights, the stage containers (timm ``blocks``/``stages``, torchvision
        ``features``, ``layers``) opened into their stages, so ``--freeze N`` counts stages."""
        blocks: list[nn.Module] = []
        for name, child in self.network.named_children():
            if next(child.parameters(), None) is None:
                continue
            stages = name in STAGE_CONTAINERS and isinstance(child, (nn.Sequential, nn.ModuleList))
            parts = list(child) if stages and len(child) >= 2 else [child]
            blocks.extend(part for part in parts if next(part.parameters(), None) is not None)
        return blocks

    @property
    def preprocess(self):
        """PIL image -> ``(3, side, side)`` in ``[0, 1]`` (resized and cropped as the model's own
        evaluation transform does; this encoder normalises)."""
        return self.prep.transform()

    def preprocessing(self) -> dict[str, Any]:
        """The record checkpoints keep (`fewshot.preprocessing.Preprocessing`)."""
        return self.prep.to_dict()

    @property
    def weights_from(self) -> str | None:
        """Where the weights came from (``pretrained`` when loaded here, else the checkpoint's
        record), or None for random weights."""
        return self.pretrained if wants_weights(self.pretrained) else self.pretrained_from

    def describe(self) -> str:
        """``resnet18 (timm resnet18.a1_in1k, licence apache-2.0)`` or ``resnet18 (random weights)``."""
        if not self.weights_from:
            return f"{self.model_name} (random weights)"
        return f"{self.model_name} ({self.weights_from}, licence {self.card()['licence']})"

    def card(self) -> dict[str, Any]:
        """This encoder's model card: the class's, with its own weights and sizes."""
        n_params = sum(p.numel() for p in self.parameters())
        return {
            **type(self).model_card(),
            "weights": self.weights_from or "random",
            "parameters": n_params,
            "embed_dim": self.embed_dim,
            "input_size": list(self.input_size),
            "preprocessing": self.preprocessing(),
        }

    def provenance(self) -> dict[str, Any]:
        """What a checkpoint or a report keeps of the weights: source, licence, training data."""
        if not self.weights_from:
            return {"weights_source": "random initialisation", "weights_licence": None}
        card = self.card()
        return {
            "weights_source": f"{card['source']} ({self.weights_from})",
            "weights_licence": card["licence"],
            "weights_training_data": card["training_data"],
        }

    @classmethod
    def model_card(cls) -> dict[str, Any]:
        """The card of the class, without building it."""
        doc = (cls.__doc__ or "").strip().splitlines()
        return {
            "summary": doc[0] if doc else cls.__name__,
            "source": cls.source,
            "training_data": cls.training_data,
            "licence": cls.licence,
        }
