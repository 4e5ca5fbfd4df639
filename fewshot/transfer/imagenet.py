"""An ImageNet-pretrained encoder with its own 1,000-class head as a fixed-class learner, so that
`fewshot predict` can label images with ImageNet classes and no support set.

Class names are the first WordNet lemma of each ImageNet-1k synset, from the lists timm ships
(``timm.data.ImageNetInfo``); the two lemmas used by two synsets each (``crane``,
``maillot``) carry the synset id, so every name is unique.
"""

from __future__ import annotations

import os
from typing import Any

from fewshot.errors import FewshotError


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in the order of the classifier's outputs."""
    from collections import Counter

    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    first = [info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes())]
    twice = {name for name, count in Counter(first).items() if count > 1}
    return [
        f"{name} ({info.index_to_label_name(i)})" if name in twice else name for i, name in enumerate(first)
    ]


def imagenet_classifier(
    encoder: str | os.PathLike[str] = "efficientnet-lite0",
    device: Any = "cpu",
    options: dict[str, Any] | None = None,
):
    """The encoder ``encoder`` names (``efficientnet-lite0``, ``timm:resnet50``, ...) with its
    pretrained ImageNet head, as a `fewshot.learners.classifier.Classifier` in eval mode.

    ``classifier.logits(x)`` with ``x`` ``(n, 3 or 1, H, W)`` in ``[0, 1]`` (``encoder.preprocess``
    of PIL images) gives ``(n, 1000)`` logits over `imagenet_class_names`.

    Raises:
        FewshotError: the encoder's weights came without a 1,000-class linear head (random
            weights, a ``layer``, a features-only file).
    """
    import torch

    from fewshot.build import build_encoder
    from fewshot.learners.classifier import Classifier

    source = build_encoder(encoder, device, options)
    model = source.encoder
    head = getattr(model, "imagenet_head", None)
    names = imagenet_class_names()
    if head is None or getattr(model, "layer", None) is not None or head[0].shape[0] != len(names):
        raise FewshotError(
            f"--encoder {encoder}: no pretrained 1,000-class ImageNet head to label images with "
            "(it needs ImageNet weights and the pooled output, no layer)"
        )
    classifier = Classifier(model, names)
    with torch.no_grad():
        classifier.head.weight.copy_(head[0])
        classifier.head.bias.copy_(head[1])
    return classifier.to(device).eval()
