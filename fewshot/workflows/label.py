"""`fewshot label` as a library call: check the options, build the CLIP classifier, label.

`label_with_clip` takes the command's options by name (the checks that need no model come
first, so a bad option fails before the weights load) and returns `label_images`'s summary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from fewshot.errors import FewshotError
from fewshot.zeroshot.labelling import LabelSummary, label_images


def check_classes(
    labels: str | None,
    labels_file: str | os.PathLike[str] | None,
    templates: str,
    class_embeddings: str | os.PathLike[str] | None,
) -> list[str] | None:
    """The class names the options give (None with `class_embeddings`), templates checked."""
    from fewshot.zeroshot.classifier import parse_class_names
    from fewshot.zeroshot.templates import load_templates

    if class_embeddings is not None:
        if labels is not None or labels_file is not None:
            raise FewshotError("--class-embeddings already holds the classes: drop --labels/--labels-file")
        return None
    names = parse_class_names(labels, labels_file)
    if len(names) < 2:
        option = "--labels" if labels is not None else "--labels-file"
        raise FewshotError(
            f"{option} gives one class ({names[0]!r}): give at least two, since with one class "
            "every image gets probability 1.0"
        )
    load_templates(templates)  # bad templates fail before the model loads
    return names


def clip_classifier(
    names: list[str] | None,
    templates: str,
    class_embeddings: str | os.PathLike[str] | None,
    *,
    model: str = "ViT-B-32",
    pretrained: str = "default",
    device: str = "auto",
    precision: str = "auto",
):
    """A fitted `ZeroShotClassifier` on a CLIP encoder: prompts for `names`, or saved class
    embeddings. ``pretrained="none"`` draws the same random weights on every call."""
    from fewshot.encoders.clip import ClipEncoder
    from fewshot.seeding import seeded
    from fewshot.zeroshot.classifier import ZeroShotClassifier

    with seeded(0):
        encoder = ClipEncoder(model=model, pretrained=pretrained, device=device, precision=precision)
    if names is None:
        return ZeroShotClassifier.from_class_embeddings(encoder, class_embeddings)
    return ZeroShotClassifier(encoder, names, templates).fit()


def label_with_clip(
    images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    labels: str | None = None,
    labels_file: str | os.PathLike[str] | None = None,
    templates: str = "simple",
    class_embeddings: str | os.PathLike[str] | None = None,
    save_class_embeddings: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] = "labels.csv",
    model: str = "ViT-B-32",
    pretrained: str = "default",
    device: str = "auto",
    precision: str = "auto",
    engine: str = "local",
    actors: int | None = None,
    **labelling,
) -> LabelSummary:
    """Label `images` zero-shot with CLIP, the classes given by `labels` ("a,b,c"),
    `labels_file` (one per line) or `class_embeddings` (a file `save_class_embeddings` wrote).

    `labelling` holds `label_images`'s keyword arguments (``top_k``, ``threshold``,
    ``organize``, ``dest``, ``batch_size``, ``workers``, ``restart``, ``progress``, ...).
    ``engine="ray"`` scores the images in Ray Data actors (`fewshot.scale.ray_label`, one per GPU
    when the cluster has GPUs, else `actors` or 1); the output is the local engine's.

    Raises:
        FewshotError: bad options or an output that cannot be written (before the model loads),
            and whatever `label_images` refuses.
    """
    from fewshot.outputs import check_writable

    check_writable(out, "--out")
    if save_class_embeddings is not None:
        check_writable(save_class_embeddings, "--save-class-embeddings")
    names = check_classes(labels, labels_file, templates, class_embeddings)
    batches = label_engine(engine, actors, device)
    if batches is not None:
        device = "cpu"  # the prompts are embedded here; each actor moves the model to its device
    clip = {"model": model, "pretrained": pretrained, "device": device, "precision": precision}
    classifier = clip_classifier(names, templates, class_embeddings, **clip)
    if save_class_embeddings is not None:
        classifier.save_class_embeddings(save_class_embeddings)
    return label_images(images, classifier, out, batches=batches, **labelling)


def label_engine(engine: str, actors: int | None, device: str):
    """None for the local engine, else the Ray engine's ``batches`` (checked, before any work)."""
    from fewshot.scale.embed import check_engine

    check_engine(engine)
    if actors is not None and engine != "ray":
        raise FewshotError("--actors applies to --engine ray only")
    if actors is not None and actors < 1:
        raise FewshotError(f"--actors must be >= 1; got {actors}")
    if engine == "local":
        return None
    from fewshot.scale.ray_label import RayBatches

    return RayBatches(actors, device)
