"""Encoders from what a user typed: a checkpoint, a registry name or ``family:architecture``."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError


@dataclass
class EncoderSource:
    """An encoder, its registry name and config, and how to prepare images for it."""

    encoder: Any
    name: str
    preprocessing: dict | None  # image_size, channels, invert (None: the encoder's own preprocess)
    learner: Any = None  # the checkpoint's learner, when the encoder came from one
    meta: dict = field(default_factory=dict)
    description: str = ""


def option_flag(name: str) -> str:
    """``inner_lr`` -> ``--inner-lr``: how a hyperparameter is spelled on the command line."""
    return "--" + name.replace("_", "-")


def _seeded(seed: int | None):
    """Draw new weights from ``seed`` (restoring the caller's random state after), or, with
    None, from the caller's generator as it stands (training seeds once for all weights)."""
    from contextlib import nullcontext

    from fewshot.seeding import seeded

    return nullcontext() if seed is None else seeded(seed)


def _given(options: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (options or {}).items() if v is not None}


def encoder_parameters(name: str) -> set[str]:
    """The constructor arguments of the encoder registered as ``name``."""
    from fewshot.encoders import ENCODERS

    return set(inspect.signature(ENCODERS.get(name)).parameters)


def _sized(factory: Any, data_shape: tuple[int, ...] | None, image_size: int | None, channels: int):
    """The constructor arguments ``factory`` wants from the data (see `Encoder.sized_by_data`)."""
    wanted = getattr(factory, "sized_by_data", {})
    if data_shape is not None and len(data_shape) == 4:
        facts = {"channels": int(data_shape[1]), "side": int(data_shape[-1])}
    elif data_shape is not None:
        facts = {"features": int(data_shape[-1])}
    else:
        facts = {"channels": channels, "side": image_size or 84}
    return {arg: facts[fact] for arg, fact in wanted.items() if fact in facts}


def build_encoder(
    spec: str | os.PathLike[str] | None,
    device: Any = "cpu",
    options: dict[str, Any] | None = None,
    data_shape: tuple[int, ...] | None = None,
    image_size: int | None = None,
    seed: int | None = 0,
    channels: int = 3,
) -> EncoderSource:
    """The encoder ``spec`` names: a checkpoint file (its encoder), a registry name, a
    ``family:architecture`` name (``timm:resnet50``: `split_spec`), or None (the shipped
    Omniglot checkpoint).

    ``options`` go to the encoder's constructor (None values dropped; one it does not take is
    refused, naming the option). Arguments the encoder sizes from the data come from
    ``data_shape`` (``(n, C, H, W)`` or ``(n, d)``), else from ``image_size``/``channels``.
    Random initial weights are drawn from ``seed``.
    """
    from fewshot.encoders import ENCODERS

    if spec is None:
        from fewshot.models import DEFAULT_CHECKPOINT

        spec = DEFAULT_CHECKPOINT
    path = Path(spec).expanduser()
    if str(spec) not in ENCODERS and (path.suffix == ".safetensors" or path.is_file()):
        return checkpoint_source(path, device)
    name, options = split_spec(str(spec), options)
    if name in ENCODERS:
        return _registry_source(name, device, options, data_shape, image_size, seed, channels)
    raise FewshotError(
        f"--encoder {str(spec)!r} is neither a checkpoint file nor an encoder name "
        f"({', '.join(ENCODERS.names())})"
    )


def split_spec(spec: str, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """``"timm:resnet50"`` -> ``("timm", {"model": "resnet50", ...})``: a registered encoder
    family and the architecture it builds. ``NAME@LAYER`` (``timm:resnet50@layer3``,
    ``efficientnet-lite0@blocks.4``) asks for the pooled output of that submodule instead of
    the pooled features. A plain name keeps its options (None dropped)."""
    from fewshot.encoders import ENCODERS

    given = _given(options)
    if "@" in spec and spec not in ENCODERS:
        spec, _, layer = spec.rpartition("@")
        if not spec or not layer:
            raise FewshotError(f"--encoder {spec}@{layer}: give NAME@LAYER, e.g. timm:resnet50@layer3")
        given = {**given, "layer": layer}
    family, sep, model = spec.partition(":")
    if not sep or family not in ENCODERS or spec in ENCODERS:
        return spec, given
    if given.get("model") not in (None, model):
        raise FewshotError(f"--encoder {spec} and --model {given['model']} name two architectures: give one")
    return family, {**given, "model": model}


def checkpoint_source(path: Path, device: Any = "cpu") -> EncoderSource:
    """A checkpoint's encoder, with its learner and how its images were prepared."""
    from fewshot.model_loading import load_learner
    from fewshot.preprocessing import preprocessing_of

    learner, meta = load_learner(path, device)
    description = f"{meta['encoder']} from {path.name}"
    return EncoderSource(learner.encoder, meta["encoder"], preprocessing_of(meta), learner, meta, description)


def _registry_source(name, device, options, data_shape, image_size, seed, channels) -> EncoderSource:
    from fewshot.encoders import ENCODERS

    factory = ENCODERS.get(name)
    accepted = encoder_parameters(name)
    for key in options:
        if key not in accepted:
            raise FewshotError(f"{option_flag(key)} does not apply to the {name} encoder")
    kwargs = {**_sized(factory, data_shape, image_size, channels), **options}
    if "device" in accepted:
        kwargs["device"] = device
    with _seeded(seed):
        try:
            encoder = factory(**kwargs)
        except TypeError as err:
            raise FewshotError(f"encoder {name!r} does not take these options: {err}") from err
    if "device" not in accepted:
        encoder = encoder.to(device)
    prep = None
    if getattr(factory, "sized_by_data", {}) and getattr(encoder, "input_size", None) is not None:
        c, side, _ = encoder.input_size
        prep = {"image_size": int(side), "channels": int(c), "invert": False}
    return EncoderSource(
        encoder, name, prep, meta=_weights_meta(name, encoder, seed), description=_describe(name, encoder)
    )


def _describe(name: str, encoder: Any) -> str:
    if hasattr(encoder, "describe"):
        return encoder.describe()
    return f"{name} (random weights)" if getattr(encoder, "has_weights", True) else name


def _weights_meta(name: str, encoder: Any, seed: int) -> dict:
    """What the table's "model" line says of weights that were not loaded from a checkpoint."""
    if not getattr(encoder, "has_weights", True):
        weights = f"none ({name} encoder: the embedding file's features)"
        untrained = True
    elif getattr(encoder, "pretrained", None):
        weights, untrained = f"pretrained {name.upper()} {_describe(name, encoder)}", False
    else:
        weights, untrained = f"untrained (random weights, seed {seed})", True
    shown = f"{name} {encoder.describe()}" if hasattr(encoder, "describe") else name
    meta = {"encoder": shown, "untrained": untrained, "weights": weights}
    if hasattr(encoder, "config") and not hasattr(encoder, "describe"):
        meta["encoder_config"] = encoder.config()
    return meta


def reads_images(encoder: str | None) -> bool:
    """Whether the registry encoder ``encoder`` prepares PIL images itself (CLIP)."""
    from fewshot.encoders import ENCODERS

    return encoder in ENCODERS and bool(getattr(ENCODERS.get(encoder), "reads_images", False))


def sized_by_data(encoder: str | None) -> bool:
    """Whether the registry encoder ``encoder`` is built to the data's shape (Conv-4, identity)."""
    from fewshot.encoders import ENCODERS

    return encoder in ENCODERS and bool(getattr(ENCODERS.get(encoder), "sized_by_data", {}))
