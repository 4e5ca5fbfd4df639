"""Candidate encoders as a user lists them, and what the scores read from each.

``--models efficientnet-lite0,conv4,efficientnet-lite0[pretrained=none]``: a comma-separated
list of encoder specs (anything ``--encoder`` takes), each optionally followed by its own
constructor options in brackets, ``;``-separated (``timm:resnet18[pretrained=none;layer=layer3]``);
a checkpoint shipped with the package by its name (``protonet-conv4-omniglot``).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from fewshot.errors import FewshotError

_SPEC = re.compile(r"^([^\[\]]+?)(?:\[([^\[\]]*)\])?$")


def split_models(text: str) -> list[str]:
    """``"a,b[x=1;y=2],c"`` -> ``["a", "b[x=1;y=2]", "c"]`` (commas inside brackets kept)."""
    out, depth, current = [], 0, ""
    for ch in text:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += ch
    out.append(current.strip())
    models = [m for m in out if m]
    if not models:
        raise FewshotError("--models names no encoder: give a comma-separated list")
    if len(set(models)) != len(models):
        raise FewshotError(f"--models names an encoder twice: {text}")
    return models


def parse_model(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name[k=v;k2=v2]"`` -> ``("name", {"k": "v", "k2": "v2"})`` (numbers read as numbers)."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise FewshotError(f"--models entry {spec!r} is not NAME or NAME[option=value;...]")
    options: dict[str, Any] = {}
    for part in filter(None, (match.group(2) or "").split(";")):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise FewshotError(f"--models entry {spec!r}: option {part!r} is not option=value")
        options[key.strip().replace("-", "_")] = _number(value.strip())
    return resolve_spec(match.group(1).strip()), options


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def resolve_spec(name: str) -> str:
    """A checkpoint shipped with the package may be named without its path
    (``protonet-conv4-omniglot``: the Omniglot Conv-4); anything else is kept."""
    from fewshot.encoders import ENCODERS
    from fewshot.models import MODELS_DIR

    shipped = MODELS_DIR / f"{name}.safetensors"
    return str(shipped) if name not in ENCODERS and ":" not in name and shipped.is_file() else name


def with_image_size(name: str, options: dict[str, Any], image_size: int | None) -> dict[str, Any]:
    """``options`` plus ``image_size`` for an encoder whose constructor takes one (the ImageNet
    encoders' input side) and that was not given its own."""
    from fewshot.build import encoder_parameters, split_spec
    from fewshot.encoders import ENCODERS

    family, _ = split_spec(name)
    if image_size is None or "image_size" in options or family not in ENCODERS:
        return options
    return {**options, "image_size": image_size} if "image_size" in encoder_parameters(family) else options


def source_head(encoder: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(weight (s, d), bias (s,))`` of the source classifier an encoder kept with its
    pretrained weights (the ImageNet encoders' ``imagenet_head``), when its embedding is the
    pooled output that head reads; else None."""
    head = getattr(encoder, "imagenet_head", None)
    if head is None or getattr(encoder, "layer", None) is not None:
        return None
    return head[0], head[1]


@torch.no_grad()
def features_and_source(encoder: Any, items: torch.Tensor, progress: bool | None = None):
    """``(features (n, d) float32 numpy, source probabilities (n, s) or None)``."""
    z = encoder.encode_batched(items, progress=bool(progress))
    return z.numpy(), source_probabilities(encoder, z)


def source_probabilities(encoder: Any, z: torch.Tensor):
    """The source head's class probabilities ``(n, s)`` for pooled features ``z`` ``(n, d)``,
    or None when the encoder kept no source head."""
    head = source_head(encoder)
    if head is None:
        return None
    return torch.softmax(z.double() @ head[0].double().T.cpu() + head[1].double().cpu(), dim=-1).numpy()


def timed_scores(names: list[str], features: np.ndarray, labels: np.ndarray, probs) -> tuple[dict, dict]:
    """``({score: value or None}, {score: seconds})``; a score that needs a source head the
    encoder does not have is None."""
    import time

    from fewshot.transfer.scores import get_score

    values, seconds = {}, {}
    for name in names:
        score = get_score(name)
        if score.needs_source and probs is None:
            values[name], seconds[name] = None, 0.0
            continue
        started = time.perf_counter()
        values[name] = score(features, labels, probs)
        seconds[name] = round(time.perf_counter() - started, 3)
    return values, seconds
