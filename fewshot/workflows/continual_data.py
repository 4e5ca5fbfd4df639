"""The stream of `fewshot continual`: the encoder, the labelled items prepared for it, and
the experiences cut from them (`fewshot.continual.scenarios`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError


def _encoder_and(r, device, dataset: str, subset: str, split: str | None):
    """The encoder and one subset prepared for it; Conv-4 (sized by the data) on a preprocessed
    named set is built from the loaded items' shape, as `fewshot finetune` does."""
    from fewshot.build import build_encoder, load_data, load_for_encoder, sized_by_data
    from fewshot.data.catalog import named_dataset

    named = named_dataset(dataset)
    if sized_by_data(r.encoder) and named is not None and not named.takes_transform:
        items = load_data(dataset, subset, split, r.data_dir, r.image_size, r.seed)
        return build_encoder(r.encoder, device, data_shape=tuple(items.data.shape), seed=r.seed), items
    source = build_encoder(r.encoder, device, image_size=r.image_size, seed=r.seed)
    return source, load_for_encoder(source, dataset, subset, split, r.data_dir, r.seed)


def _train_test(r, device):
    """``(source, train, test, whole)``: a named set's own train/test parts when it has an item
    split (Fashion-MNIST, digits), else ``--subset`` split by items per class (``whole`` keeps
    the class groups for ``--split-by group``)."""
    from fewshot.build import load_for_encoder
    from fewshot.continual.scenarios import item_split
    from fewshot.data.catalog import named_dataset

    named = named_dataset(r.data)
    if named is not None and getattr(named, "item_split", None) and r.split in (None, named.item_split):
        source, train = _encoder_and(r, device, r.data, "train", r.split)
        test = load_for_encoder(source, r.data, "test", r.split, r.data_dir, r.seed)
        return source, train, test, train
    subset = r.subset or ("all" if named is None else named.default_subset)
    source, whole = _encoder_and(r, device, r.data, subset, r.split)
    train, test = item_split(whole, r.test_fraction, r.seed)
    return source, train, test, whole


def load_stream(r, device) -> tuple[Any, Any, dict]:
    """``(EncoderSource, Stream, data digests)`` for the request `r` (`ContinualRequest`)."""
    from fewshot.continual import scenarios
    from fewshot.runs import data_description

    if r.scenario == "domain-il" and r.shifts is None:
        return _folder_domains(r, device)
    source, train, test, whole = _train_test(r, device)
    digests = {"train": data_description(train), "test": data_description(test)}
    train = scenarios.subsample(train, r.max_per_class, r.seed)
    test = scenarios.subsample(test, r.max_test_per_class, r.seed)
    if r.scenario == "domain-il":
        stream = scenarios.domains_from_shifts(train, test, r.shifts.split(","), r.seed)
        return source, stream, digests
    if r.split_by == "group":
        parts, names = scenarios.group_splits(whole, r.tasks)
    else:
        if r.tasks is None:
            raise FewshotError("--tasks is needed with --split-by classes")
        order = None if r.class_order is None else [int(v) for v in r.class_order.split(",")]
        parts, names = scenarios.class_splits(train.n_classes, r.tasks, r.seed, order), None
    stream = scenarios.split_by_classes(train, test, parts, r.scenario, names)
    return source, stream, digests


def _folder_domains(r, device):
    """One domain per subfolder of ``r.data`` (each an image folder of the same classes)."""
    from fewshot.build import build_encoder, load_for_encoder
    from fewshot.continual import scenarios
    from fewshot.runs import data_description

    source = build_encoder(r.encoder, device, image_size=r.image_size or 28, seed=r.seed)

    def read(path: Path):
        data = load_for_encoder(source, str(path), "all", None, r.data_dir, r.seed)
        return scenarios.subsample(data, r.max_per_class, r.seed)

    stream = scenarios.domains_from_folder(Path(r.data).expanduser(), r.test_fraction, r.seed, read)
    digests = {e.name: data_description(e.train) for e in stream.experiences}
    return source, stream, digests
