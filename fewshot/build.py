"""What a user typed -> the objects it names: encoders, learners, checkpoints, transforms.

Every command and the Python API build models here, so a name means the same thing
everywhere. What varies by model is declared by the model, not tested by name here:

- an encoder's constructor signature says which options it takes (``model``, ``pretrained``,
  ``device``, ...), and ``Encoder.sized_by_data`` which arguments the data fills in;
- a learner's constructor says its hyperparameters (`FewShotLearner.param_names`, with
  ``Literal`` hints as choices), ``defaults_for(encoder)`` what suits an encoder, and its
  ``kind`` whether it can reuse another learner's encoder.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshot.errors import CheckpointError, FewshotError


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


# -- encoders -----------------------------------------------------------------------------


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
    family and the architecture it builds. A plain name keeps its options (None dropped)."""
    from fewshot.encoders import ENCODERS

    given = _given(options)
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


# -- learners -----------------------------------------------------------------------------


def build_learner(
    method: str,
    encoder: Any,
    options: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    seed: int | None = 0,
):
    """The learner registered as ``method`` around ``encoder``.

    ``options`` are hyperparameters the user set (None values dropped): one the learner does
    not take, or a value outside its ``Literal`` choices, is refused naming the option.
    ``context`` holds facts of the task (``ways``) passed only to learners that take them.
    The learner's ``defaults_for(encoder)`` fills what the user left out. New weights (heads)
    are drawn from ``seed``.
    """
    from fewshot.learners import LEARNERS

    cls = LEARNERS.get(method)
    given = check_learner_options(method, options)
    accepted = cls.param_names()
    kwargs = {**cls.defaults_for(encoder), **given}
    kwargs.update({k: v for k, v in _given(context).items() if k in accepted and k not in kwargs})
    with _seeded(seed):
        return cls(encoder, **{k: v for k, v in kwargs.items() if k in accepted})


def check_learner_options(method: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The options that are set, after refusing one ``method`` does not take or a bad choice."""
    from fewshot.learners import LEARNERS

    cls = LEARNERS.get(method)
    given = _given(options)
    accepted, choices = cls.param_names(), cls.param_choices()
    for key, value in given.items():
        if key not in accepted:
            raise FewshotError(f"{option_flag(key)} does not apply to {method}")
        if key in choices and value not in choices[key]:
            raise FewshotError(f"unknown {key} {value!r}; choose one of: {', '.join(choices[key])}")
    return given


def rewrap(source: EncoderSource, method: str, options: dict[str, Any] | None, seed: int = 0):
    """A checkpoint's model as ``method``: its own learner (``options`` set on it), or its
    encoder inside ``method`` when that learner works on frozen embeddings."""
    from fewshot.learners import LEARNERS
    from fewshot.learners.base import EMBEDDING

    own = source.meta["learner"]
    if method == own:
        learner, given = source.learner, check_learner_options(method, options)
        for key, value in given.items():
            setattr(learner, key, value)  # scikit-learn's set_params
        return learner
    if LEARNERS.get(method).kind != EMBEDDING:
        raise FewshotError(
            f"--method {method} adapts its encoder and cannot reuse a {own} checkpoint: "
            f"train one with `fewshot train --method {method}`"
        )
    return build_learner(method, source.encoder, options, seed=seed)


# -- whole models -------------------------------------------------------------------------


def build_model(
    method: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    encoder: str | None = None,
    encoder_options: dict[str, Any] | None = None,
    learner_options: dict[str, Any] | None = None,
    device: Any = "cpu",
    data_shape: tuple[int, ...] | None = None,
    seed: int = 0,
):
    """The model a command asked for, in eval mode. Returns ``(learner, metadata)``.

    - ``checkpoint`` given, or neither ``checkpoint`` nor ``encoder`` (the shipped Omniglot
      ProtoNet): load it; another ``method`` reuses its encoder if it learns on embeddings.
    - ``encoder`` alone: that registry encoder (sized from ``data_shape``) inside ``method``
      (default protonet), untrained unless the encoder loads pretrained weights.

    ``metadata["from_checkpoint"]`` says whether weights were loaded from a checkpoint;
    ``metadata["weights"]`` describes them otherwise.
    """
    from fewshot.learners import LEARNERS

    if method is not None:
        LEARNERS.get(method)  # unknown names fail here, before any loading
    if checkpoint is None and encoder is not None:
        source = build_encoder(encoder, device, encoder_options, data_shape, seed=seed)
        name = method or "protonet"
        learner = build_learner(name, source.encoder, learner_options, seed=seed)
        return learner.to(device).eval(), {"learner": name, **source.meta}
    source = checkpoint_source(_checkpoint_path(checkpoint), device)
    if encoder is not None and encoder != source.name:
        raise FewshotError(
            f"--encoder {encoder} conflicts with the checkpoint, which holds a {source.name} "
            "encoder: leave out --encoder or --checkpoint"
        )
    own = source.meta["learner"]
    learner = rewrap(source, method or own, learner_options, seed=seed).to(device).eval()
    meta = {**source.meta, "from_checkpoint": True}
    if learner is not source.learner:
        meta.update(learner=method, wrapped_from=own)
    return learner, meta


def _checkpoint_path(checkpoint: str | os.PathLike[str] | None) -> Path:
    if checkpoint is not None:
        return Path(checkpoint)
    from fewshot.models import DEFAULT_CHECKPOINT

    if not DEFAULT_CHECKPOINT.exists():
        raise CheckpointError(
            f"the shipped checkpoint {DEFAULT_CHECKPOINT.name} is not installed: "
            "pass --checkpoint FILE or --encoder NAME"
        )
    return DEFAULT_CHECKPOINT


def reads_images(encoder: str | None) -> bool:
    """Whether the registry encoder ``encoder`` prepares PIL images itself (CLIP)."""
    from fewshot.encoders import ENCODERS

    return encoder in ENCODERS and bool(getattr(ENCODERS.get(encoder), "reads_images", False))


def sized_by_data(encoder: str | None) -> bool:
    """Whether the registry encoder ``encoder`` is built to the data's shape (Conv-4, identity)."""
    from fewshot.encoders import ENCODERS

    return encoder in ENCODERS and bool(getattr(ENCODERS.get(encoder), "sized_by_data", {}))


# -- data for a model ---------------------------------------------------------------------


def data_transform(meta: dict[str, Any], learner: Any):
    """The PIL -> tensor transform for image-folder data: the encoder's own (CLIP's
    ``preprocess``), or the checkpoint's preprocessing, or None (the loader's default)."""
    from fewshot.preprocessing import preprocessing_from_metadata

    for attribute in ("preprocess", "transform"):
        own = getattr(learner.encoder, attribute, None)
        if callable(own):
            return own
    if meta.get("untrained"):
        return None
    try:
        return preprocessing_from_metadata(meta).transform()
    except CheckpointError:
        return None


def load_data(dataset, subset, split=None, data_dir=None, image_size=None, seed=0, transform=None):
    """`fewshot.data.loading.load_dataset`, passing ``transform`` to data sets that take one."""
    from fewshot.data.catalog import named_dataset
    from fewshot.data.loading import load_dataset

    named = named_dataset(dataset)
    if transform is None or (named is not None and not named.takes_transform):
        return load_dataset(dataset, subset, split, data_dir, image_size, seed)
    return load_dataset(dataset, subset, split, data_dir, image_size, seed, transform=transform)


def load_for_encoder(
    source: EncoderSource,
    dataset: str,
    subset: str,
    split: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
):
    """Load ``dataset`` (a named set or a path) with the items prepared as ``source`` expects."""
    from fewshot.data.catalog import named_dataset

    prep = source.preprocessing
    named = named_dataset(dataset)
    if named is not None and not named.takes_transform:
        size = (prep or {}).get("image_size") or named.image_size
        return load_data(dataset, subset, split, data_dir, size, seed)
    transform = getattr(source.encoder, "preprocess", None)
    if transform is None:
        from fewshot.data.transforms import image_transform

        if prep is None:
            raise FewshotError(f"{source.description}: unknown image size; pass --image-size")
        transform = image_transform(
            int(prep["image_size"]), int(prep.get("channels", 3)), bool(prep.get("invert"))
        )
    return load_data(dataset, subset, split, data_dir, seed=seed, transform=transform)


def embedding_source(dataset: str, subset: str, split: str | None = None, seed: int = 0):
    """An embedding file's features with the identity encoder (nothing to embed).
    Returns ``(EncoderSource, LabeledTensors)``."""
    from fewshot.data.loading import load_dataset
    from fewshot.encoders.base import IdentityEncoder

    data = load_dataset(dataset, subset, split, seed=seed)
    encoder = IdentityEncoder(int(data.data.shape[-1]))
    return EncoderSource(encoder, "identity", None, description="identity (embedding-file features)"), data
