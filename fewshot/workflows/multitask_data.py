"""The tasks of `fewshot multitask`: the encoder, and each data set's training and test items
prepared for it (labels ``0..C-1`` per task)."""

from __future__ import annotations

from typing import Any

from fewshot.errors import FewshotError


def _whole_or_parts(source, name: str, r) -> tuple[Any, Any]:
    """``(train, test)``: a named set's own train/test parts when it has an item split
    (Fashion-MNIST, digits), else ``--subset`` split by items per class (``--test-fraction``)."""
    from fewshot.build import load_for_encoder
    from fewshot.continual.scenarios import item_split
    from fewshot.data.catalog import named_dataset

    named = named_dataset(name)
    if named is not None and getattr(named, "item_split", None):
        train = load_for_encoder(source, name, "train", None, r.data_dir, r.seed)
        return train, load_for_encoder(source, name, "test", None, r.data_dir, r.seed)
    subset = r.subset or ("all" if named is None else named.default_subset)
    whole = load_for_encoder(source, name, subset, None, r.data_dir, r.seed)
    return item_split(whole, r.test_fraction, r.seed)


def _encoder(r, device, first: str):
    """The encoder; one sized by the data (Conv-4) on a preprocessed named set takes the
    shape of that set's items at ``--image-size`` (as `fewshot continual` does)."""
    from fewshot.build import build_encoder, load_data, sized_by_data
    from fewshot.data.catalog import named_dataset

    named = named_dataset(first)
    if sized_by_data(r.encoder) and named is not None and not named.takes_transform:
        subset = "train" if getattr(named, "item_split", None) else named.default_subset
        probe = load_data(first, subset, None, r.data_dir, r.image_size, r.seed)
        return build_encoder(r.encoder, device, data_shape=tuple(probe.data[:1].shape), seed=r.seed)
    return build_encoder(r.encoder, device, image_size=r.image_size, seed=r.seed)


def _channels(data, channels: int | None):
    """Grey items for an RGB encoder are repeated to 3 channels; RGB ones for a grey encoder
    averaged (a folder and a named grey set can then share a Conv-4)."""
    from fewshot.data.tensors import LabeledTensors

    if channels is None or data.data.dim() != 4 or data.data.shape[1] == channels:
        return data
    x = data.data.repeat(1, channels, 1, 1) if data.data.shape[1] == 1 else data.data.mean(1, keepdim=True)
    return LabeledTensors(x, data.labels, data.class_names, dict(data.info), data.class_groups)


def _some_classes(train, test, max_classes: int | None, seed: int):
    """At most `max_classes` classes (a seeded choice), relabelled ``0..C-1`` in both parts."""
    import torch

    from fewshot.data.tensors import LabeledTensors

    if max_classes is None or train.n_classes <= max_classes:
        return train, test
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(train.n_classes, generator=g)[:max_classes].sort().values
    remap = torch.full((train.n_classes,), -1, dtype=torch.long)
    remap[keep] = torch.arange(len(keep))
    names = [train.class_names[c] for c in keep]

    def take(d):
        mask = torch.isin(d.labels, keep)
        return LabeledTensors(d.data[mask], remap[d.labels[mask]], names, dict(d.info))

    return take(train), take(test)


def load_tasks(r, device) -> tuple[Any, list, dict]:
    """``(EncoderSource, [Task], data digests)`` for the request `r` (`MultiTaskRequest`)."""
    from fewshot.continual.scenarios import subsample
    from fewshot.multitask.run import Task
    from fewshot.runs import data_description

    names = data_names(r.data)
    source = _encoder(r, device, names[0])
    channels = (source.preprocessing or {}).get("channels")
    tasks, digests = [], {}
    for name in names:
        train, test = (_channels(d, channels) for d in _whole_or_parts(source, name, r))
        if train.n_classes < 2:
            raise FewshotError(f"--data {name}: a task needs at least 2 classes, it has {train.n_classes}")
        train, test = _some_classes(train, test, r.max_classes, r.seed)
        digests[name] = {"train": data_description(train), "test": data_description(test)}
        train = subsample(train, r.max_per_class, r.seed)
        test = subsample(test, r.max_test_per_class, r.seed)
        tasks.append(Task(name, train, test))
    _same_shape(tasks, source)
    return source, tasks, digests


def _same_shape(tasks: list, source) -> None:
    if not getattr(source.encoder, "sized_by_data", {}):
        return
    shapes = {t.name: tuple(t.train.data.shape[1:]) for t in tasks}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{n} {list(s)}" for n, s in shapes.items())
        raise FewshotError(f"--data: the tasks' items differ in shape ({listed}); pass --image-size")


def data_names(text: str) -> list[str]:
    """``"fashion-mnist,digits"`` -> the task names; each once, at least two."""
    from fewshot.multitask.run import slug

    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) < 2:
        raise FewshotError(f"--data needs at least two data sets, comma-separated, got {text!r}")
    slugs = [slug(n) for n in names]
    for i, s in enumerate(slugs):
        if s in slugs[:i]:
            raise FewshotError(f"--data names {names[i]!r} twice (or two sets that share the name {s!r})")
    return names


__all__ = ["data_names", "load_tasks"]
