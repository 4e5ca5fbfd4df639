"""Any timm architecture as an `Encoder`: ``--encoder timm:resnet50`` (``timm:NAME.TAG`` for a
particular set of weights).

Weights (``pretrained``): ``"default"`` (the architecture's default tag, from the Hugging Face
cache or the torch hub cache, else downloaded when the host answers), a tag, a local
``.safetensors``/``.pth`` file (read without unpickling), or ``None``/``"none"`` (random weights,
seeded by `fewshot.build`). Offline without weights: one line saying where to put the file.
Preprocessing (side, mean/std, interpolation, crop) is timm's ``resolve_data_config`` for the
model. timm is imported only when an encoder is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


def _import_timm():
    try:
        import timm
    except ImportError as err:  # pragma: no cover - timm is in the pretrained extra
        raise FewshotError("timm encoders need timm: pip install 'fewshot[pretrained]'") from err
    return timm


def timm_preprocessing(network: Any, image_size: int | None) -> Preprocessing:
    """The model's own evaluation preprocessing (``timm.data.resolve_data_config``)."""
    timm = _import_timm()
    cfg = timm.data.resolve_data_config(model=network)
    interpolation = cfg.get("interpolation", "bilinear")
    return Preprocessing(
        image_size=int(image_size or cfg["input_size"][-1]),
        channels=3,
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
        resize="crop",
        interpolation=interpolation if interpolation in INTERPOLATIONS else "bilinear",
        crop_pct=float(cfg.get("crop_pct") or 0.875),
        normalize_in="encoder",
    )


def cached_weights(cfg: dict) -> Path | None:
    """The model's weights file in the Hugging Face cache or the torch hub cache, if there."""
    if cfg.get("hf_hub_id"):
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(cfg["hf_hub_id"], filename)
            if isinstance(found, str):
                return Path(found)
    if cfg.get("url"):
        import torch.hub

        target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg["url"])
        if target.is_file():
            return target
    return None


def _unavailable(name: str, cfg: dict) -> WeightsUnavailableError:
    from huggingface_hub.constants import HF_HUB_CACHE

    if cfg.get("hf_hub_id"):
        where = (
            f"download model.safetensors from https://huggingface.co/{cfg['hf_hub_id']} and pass "
            f"--pretrained PATH/model.safetensors, or copy a Hugging Face cache holding it to {HF_HUB_CACHE}"
        )
    else:
        where = f"download {cfg.get('url')} and pass --pretrained PATH, or put it in the torch hub cache"
    return WeightsUnavailableError(
        f"no weights for timm:{name} on this machine and no network to download them: {where} "
        "(or --pretrained none for random weights)"
    )


def create_network(name: str, pretrained: str | None):
    """``(timm model, where its weights came from or None)``."""
    timm = _import_timm()
    if name.split(".")[0] not in timm.list_models():
        close = timm.list_models(f"*{name.split('.')[0]}*")[:8]
        raise FewshotError(
            f"unknown timm architecture {name!r}" + (f" (close: {', '.join(close)})" if close else "")
        )
    if not wants_weights(pretrained):
        return timm.create_model(name, pretrained=False), None
    path = weights_file(pretrained)
    if path is not None:  # the user's file: read without unpickling, every weight checked
        network = timm.create_model(name, pretrained=False)
        head = network.pretrained_cfg.get("classifier") or "fc"
        load_into(network, load_weights_file(path), f"--pretrained {path}", optional=(head,))
        return network, str(path)
    if pretrained != "default":
        name = f"{name.split('.')[0]}.{pretrained}"
    cfg = (timm.get_pretrained_cfg(name) or _no_tag(name)).to_dict()
    cached = cached_weights(cfg)
    if cached is not None:  # timm's own loader (weights_only) with the model's filters
        network = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(cached)})
        return network, f"timm {name} ({cached})"
    if not reachable("huggingface.co" if cfg.get("hf_hub_id") else "github.com"):
        raise _unavailable(name, cfg)
    return timm.create_model(name, pretrained=True), f"timm {name}"


def _no_tag(name: str):
    raise FewshotError(
        f"timm has no pretrained weights {name!r}: pass --pretrained FILE or --pretrained none"
    )


@ENCODERS.register("timm")
class TimmEncoder(ImageNetEncoder):
    """A timm architecture (``model``, e.g. ``resnet50`` or ``resnet50.a1_in1k``), pooled features.

    Args:
        model: timm model name, optionally with a ``.tag``.
        pretrained: ``"default"``, a tag, a weights file, or None/``"none"`` (random weights).
        layer: a submodule name (e.g. ``layer3``; ``network.feature_info``) whose output,
            globally average-pooled, is the embedding; None: the pooled pre-logits features.
        image_size: input side (default: the model's own).
        pretrained_from: where the weights came from, recorded by `config` so that a
            checkpoint rebuilds without downloading (its file holds the weights).

    Shapes: ``(n, 1 or 3, H, W)`` in ``[0, 1]`` -> ``(n, embed_dim)``.
    """

    source = "timm (pytorch-image-models), https://github.com/huggingface/pytorch-image-models"
    training_data = "per architecture and tag (most default tags: ImageNet-1k)"
    licence = "per weights (timm's pretrained_cfg 'license'; timm code: Apache-2.0)"

    def __init__(
        self,
        model: str = "resnet18",
        pretrained: str | None = "default",
        layer: str | None = None,
        image_size: int | None = None,
        pretrained_from: str | None = None,
    ) -> None:
        super().__init__()
        network, loaded = create_network(model, pretrained)
        self._setup(network, model, loaded, layer, image_size, pretrained_from)

    def _setup(self, network, model, loaded, layer, image_size, pretrained_from) -> None:
        import torch

        self.model_name, self.image_size = model, image_size
        self.pretrained, self.pretrained_from = loaded, pretrained_from
        self.weights_licence = network.pretrained_cfg.get("license")
        prep = timm_preprocessing(network, image_size)
        head = network.get_classifier()
        self.imagenet_head = None  # (weight, bias) of the pretrained classifier, not saved
        if loaded and isinstance(head, torch.nn.Linear):
            self.imagenet_head = (head.weight.detach().clone(), head.bias.detach().clone())
        network.reset_classifier(0)
        self.network = network
        self.embed_dim = int(getattr(network, "head_hidden_size", None) or network.num_features)
        self._finish(prep, layer, [f["module"] for f in getattr(network, "feature_info", [])])

    def card(self) -> dict[str, Any]:
        card = super().card()
        if self.weights_licence:
            card["licence"] = self.weights_licence
        return {**card, "architecture": self.model_name}

    def config(self) -> dict:
        return {
            "model": self.model_name,
            "pretrained": None,
            "layer": self.layer,
            "image_size": self.image_size,
            "pretrained_from": self.weights_from,
        }
