"""Continual-learning streams: a labelled data set cut into a sequence of experiences.

- **class-incremental** (``class-il``): each experience brings new classes; at test time the
  model chooses among every class it has seen (no task id).
- **task-incremental** (``task-il``): the same experiences, but the task id is known at test
  time, so the model chooses only among that experience's classes.
- **domain-incremental** (``domain-il``): every experience has the same classes from another
  domain: one folder per domain (``root/<domain>/<class>/``, `domains_from_folder`) or the
  shifts of `fewshot.data.shifts` applied to one data set (`domains_from_shifts`).

Classes are split into experiences by a seeded permutation (`class_splits`; the same seed
gives the same stream) or by an explicit order, or by the data set's class groups (Omniglot:
one alphabet per experience, `group_splits`). Labels stay the data set's global class ids in
every experience, so one head covers the stream and a model's outputs keep their meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import DataError

SCENARIOS = ("class-il", "task-il", "domain-il")


@dataclass
class Experience:
    """One step of a stream: its training and test items and the global class ids it holds.

    ``train.labels`` / ``test.labels`` are global class ids ``0..len(stream.class_names)-1``.
    """

    index: int
    train: LabeledTensors
    test: LabeledTensors
    classes: list[int]
    name: str = ""


@dataclass
class Stream:
    """The experiences of one scenario, in training order, and the names of every class."""

    scenario: str
    experiences: list[Experience]
    class_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.experiences)

    @property
    def task_aware(self) -> bool:
        """Whether the task id is known at test time (task-incremental)."""
        return self.scenario == "task-il"

    def describe(self) -> dict[str, Any]:
        """What identifies the stream in a run's settings (classes and sizes of each experience)."""
        return {
            "scenario": self.scenario,
            "classes": [e.classes for e in self.experiences],
            "names": [e.name for e in self.experiences],
            "train_items": [len(e.train) for e in self.experiences],
            "test_items": [len(e.test) for e in self.experiences],
            **self.info,
        }


def class_splits(
    n_classes: int, n_tasks: int, seed: int = 0, order: Sequence[int] | None = None
) -> list[list[int]]:
    """The class ids of each of `n_tasks` experiences: `order` (every class once) or a seeded
    permutation, cut into parts whose sizes differ by at most one (the first parts larger)."""
    if n_tasks < 1 or n_tasks > n_classes:
        raise DataError(f"--tasks must be between 1 and the {n_classes} classes, got {n_tasks}")
    if order is None:
        order = np.random.default_rng(seed).permutation(n_classes).tolist()
    order = [int(c) for c in order]
    if sorted(order) != list(range(n_classes)):
        raise DataError(
            f"--class-order must list each of the {n_classes} class ids 0..{n_classes - 1} once, "
            f"got {len(order)} ids"
        )
    return [part.tolist() for part in np.array_split(np.asarray(order), n_tasks)]


def group_splits(data: LabeledTensors, n_tasks: int | None = None) -> tuple[list[list[int]], list[str]]:
    """One experience per class group (Omniglot: per alphabet), groups in name order; the first
    `n_tasks` groups when given. Returns the class ids of each experience and the group names."""
    if data.class_groups is None:
        raise DataError("--split-by group needs a data set with class groups (omniglot, nested folders)")
    names = sorted(set(data.class_groups))
    if n_tasks is not None:
        if n_tasks > len(names):
            raise DataError(f"--tasks {n_tasks}: the data set has only {len(names)} class groups")
        names = names[:n_tasks]
    parts = [[c for c, g in enumerate(data.class_groups) if g == name] for name in names]
    return parts, names


def _take(data: LabeledTensors, mask: torch.Tensor, **info: Any) -> LabeledTensors:
    idx = torch.nonzero(mask).flatten()
    return LabeledTensors(data.data[idx], data.labels[idx], list(data.class_names), {**data.info, **info})


def split_by_classes(
    train: LabeledTensors,
    test: LabeledTensors,
    parts: list[list[int]],
    scenario: str = "class-il",
    names: Sequence[str] | None = None,
) -> Stream:
    """A class- or task-incremental stream: experience k holds the items of classes ``parts[k]``."""
    if scenario not in ("class-il", "task-il"):
        raise DataError(f"unknown class split scenario {scenario!r}: choose class-il or task-il")
    if list(train.class_names) != list(test.class_names):
        raise DataError("the training and test items must have the same classes")
    experiences = []
    for k, classes in enumerate(parts):
        ids = torch.as_tensor(classes, dtype=torch.long)
        exp_train = _take(train, torch.isin(train.labels, ids), experience=k)
        exp_test = _take(test, torch.isin(test.labels, ids), experience=k)
        if len(exp_train) == 0 or len(exp_test) == 0:
            raise DataError(f"experience {k} (classes {classes}) has no training or no test items")
        name = names[k] if names is not None else f"task {k + 1}"
        experiences.append(Experience(k, exp_train, exp_test, list(classes), name))
    return Stream(scenario, experiences, list(train.class_names))


def class_incremental(
    train: LabeledTensors,
    test: LabeledTensors,
    n_tasks: int,
    seed: int = 0,
    order: Sequence[int] | None = None,
) -> Stream:
    """Split the classes into `n_tasks` experiences (`class_splits`); no task id at test time."""
    return split_by_classes(train, test, class_splits(train.n_classes, n_tasks, seed, order), "class-il")


def task_incremental(
    train: LabeledTensors,
    test: LabeledTensors,
    n_tasks: int,
    seed: int = 0,
    order: Sequence[int] | None = None,
) -> Stream:
    """`class_incremental`'s experiences, with the task id known at test time."""
    return split_by_classes(train, test, class_splits(train.n_classes, n_tasks, seed, order), "task-il")


def domain_incremental(domains: Sequence[tuple[str, LabeledTensors, LabeledTensors]]) -> Stream:
    """One experience per ``(name, train, test)`` domain; every domain has the same classes."""
    if len(domains) < 1:
        raise DataError("a domain-incremental stream needs at least one domain")
    names = list(domains[0][1].class_names)
    experiences = []
    for k, (name, train, test) in enumerate(domains):
        if list(train.class_names) != names or list(test.class_names) != names:
            raise DataError(f"domain {name!r} has other classes than domain {domains[0][0]!r}")
        classes = sorted(set(train.labels.tolist()))
        experiences.append(Experience(k, train, test, classes, name))
    return Stream("domain-il", experiences, names)


def domains_from_shifts(
    train: LabeledTensors, test: LabeledTensors, shifts: Sequence[str], seed: int = 0
) -> Stream:
    """Domains made by `fewshot.data.shifts`: ``"none"`` is the data as it is, any other name a
    shift applied to both parts (seeded per domain)."""
    from fewshot.data.shifts import shift_data

    domains = []
    for k, name in enumerate(shifts):
        if name == "none":
            domains.append((name, train, test))
        else:
            domains.append((name, shift_data(train, name, seed + k), shift_data(test, name, seed + k)))
    return domain_incremental(domains)


def item_split(
    data: LabeledTensors, test_fraction: float, seed: int = 0
) -> tuple[LabeledTensors, LabeledTensors]:
    """A seeded split of every class's items: ``test_fraction`` of them (at least one, never all)
    for testing, the rest for training."""
    from fewshot.data.labelled import stratified_pick

    labels = data.labels.numpy()
    picked = torch.from_numpy(stratified_pick(labels, np.ones(len(labels), dtype=bool), test_fraction, seed))
    return _take(data, ~picked), _take(data, picked)


def domains_from_folder(root, test_fraction: float = 0.2, seed: int = 0, load=None) -> Stream:
    """A domain-incremental stream from ``root/<domain>/<class>/`` image folders, domains in name
    order; each domain's items are split by `item_split`. ``load(path)`` reads one domain folder
    (default: `fewshot.data.loading.load_dataset` with subset ``all``)."""
    from pathlib import Path

    from fewshot.data.loading import load_dataset

    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise DataError(f"{root}: a domain-incremental folder needs at least two domain subfolders")
    read = load or (lambda path: load_dataset(str(path), "all"))
    domains = []
    for folder in folders:
        data = read(folder)
        train, test = item_split(data, test_fraction, seed)
        domains.append((folder.name, train, test))
    return domain_incremental(domains)


def subsample(data: LabeledTensors, per_class: int | None, seed: int = 0) -> LabeledTensors:
    """At most `per_class` items of each class, chosen with `seed` (None: all), in item order."""
    if per_class is None:
        return data
    g = np.random.default_rng(seed)
    labels = data.labels.numpy()
    keep = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        keep[g.permutation(rows)[:per_class]] = True
    return _take(data, torch.from_numpy(keep))


__all__ = [
    "SCENARIOS",
    "Experience",
    "Stream",
    "class_incremental",
    "class_splits",
    "domain_incremental",
    "domains_from_folder",
    "domains_from_shifts",
    "group_splits",
    "item_split",
    "split_by_classes",
    "subsample",
    "task_incremental",
]
