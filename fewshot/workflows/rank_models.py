"""`fewshot rank-models` as a library call: which pretrained encoder to start from.

Every candidate encoder embeds the target's labelled training items once; the
transferability scores (`fewshot.transfer.scores`) rank them without training. With
``finetune`` each candidate is also trained on the same items and tested on held-out ones,
and Kendall's tau and weighted tau say how well each score ranked the candidates.

The labelled sample: ``per_class`` items of every class (all with None) of the data set's
fine-tuning part, split per class into ``1 - val_fraction`` for scores and training and
``val_fraction`` held out for the accuracy (the same items for every candidate).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError


@dataclass
class RankRequest:
    """The settings of `fewshot rank-models`."""

    data: str
    models: str  # comma-separated encoder specs, each optionally NAME[option=value;...]
    scores: str | None = None  # comma-separated; None: every score
    finetune: bool = False
    strategy: str = "full"
    epochs: int = 5
    lr: float = 1e-4
    head_lr: float = 1e-3
    batch_size: int = 32
    freeze_batchnorm: bool = False  # BatchNorm keeps the candidates' running statistics
    per_class: int | None = None
    classes: int | None = None  # a seeded sample of this many classes
    val_fraction: float = 0.2
    subset: str = "all"
    split: str | None = None
    image_size: int | None = None
    seed: int = 0
    device: str = "auto"
    data_dir: Path | None = None
    out: Path | None = None  # the report as JSON
    progress: bool | None = None


def check_request(r: RankRequest) -> tuple[list[str], list[str]]:
    """``(model specs, score names)``; every refusal one line naming the option."""
    from fewshot.transfer.candidates import parse_model, split_models
    from fewshot.transfer.scores import score_names
    from fewshot.workflows.finetune import strategies

    models = split_models(r.models)
    for spec in models:
        check_encoder_name(parse_model(spec)[0], "--models")
    names = score_names() if r.scores is None else [s.strip() for s in r.scores.split(",") if s.strip()]
    unknown = [s for s in names if s not in score_names()]
    if unknown or not names:
        raise FewshotError(f"--scores {r.scores!r}: choose from {', '.join(score_names())}")
    if r.strategy not in strategies():
        raise FewshotError(f"--strategy {r.strategy!r}: choose one of {', '.join(strategies())}")
    if r.per_class is not None and r.per_class < 2:
        raise FewshotError(f"--per-class must be at least 2 (one to train, one to test), got {r.per_class}")
    if not 0 < r.val_fraction < 1:
        raise FewshotError(f"--val-fraction must be between 0 and 1 (exclusive), got {r.val_fraction}")
    if r.out is not None:
        from fewshot.runs import check_output_file

        check_output_file(r.out, "--out", suffix=".json")
    return models, names


def check_encoder_name(name: str, option: str) -> None:
    """Refuse a name that is neither a file nor an encoder (before any candidate is built)."""
    from fewshot.build import split_spec
    from fewshot.encoders import ENCODERS

    if not Path(name).expanduser().is_file() and split_spec(name)[0] not in ENCODERS:
        names = ", ".join(ENCODERS.names())
        raise FewshotError(f"{option}: {name!r} is neither a checkpoint file nor an encoder name ({names})")


def rank_models(request: RankRequest) -> dict[str, Any]:
    """Score (and with ``finetune`` train and test) every candidate; the report as a dict:
    ``models`` (one row each), ``correlations`` (per score, with ``finetune``), ``best``."""
    from fewshot.device import resolve_device
    from fewshot.progress import progress_bar
    from fewshot.transfer.target import Target

    r = request
    models, names = check_request(r)
    device = resolve_device(r.device)
    target = Target(r.data, r.subset, r.split, r.data_dir, r.seed, r.per_class, r.image_size, r.classes)
    rows = []
    with progress_bar(r.progress, total=len(models), desc="models", unit="model") as bar:
        for spec in models:
            rows.append(_candidate(spec, target, names, r, device))
            bar.update(1)
    report = {
        "data": r.data,
        "subset": target.subset,
        "per_class": r.per_class,
        "scores": names,
        "finetune": {"strategy": r.strategy, "epochs": r.epochs} if r.finetune else None,
        "models": rows,
        "best": {n: _best(rows, lambda row, n=n: row["scores"][n]) for n in names},
    }
    if r.finetune:
        from fewshot.transfer.ranking import rank_correlations

        accuracies = [row["accuracy"] for row in rows]
        report["correlations"] = rank_correlations(
            {n: [row["scores"][n] for row in rows] for n in names}, accuracies
        )
        report["best"]["accuracy"] = _best(rows, lambda row: row["accuracy"])
    if r.out is not None:
        write_json(r.out, report)
    return report


def _candidate(spec: str, target, names: list[str], r: RankRequest, device) -> dict[str, Any]:
    import torch

    from fewshot.transfer.candidates import features_and_source, parse_model, timed_scores, with_image_size
    from fewshot.transfer.finetune import split_items

    name, options = parse_model(spec)
    source, items = target.source_and_items(
        name, device, with_image_size(name, options, r.image_size), r.seed
    )
    if items.n_classes < 2:
        raise FewshotError(f"{r.data} has {items.n_classes} class: ranking needs at least two")
    train, test = split_items(items, r.val_fraction, r.seed)
    started = time.perf_counter()
    features, probs = features_and_source(source.encoder.to(device), train.data, r.progress)
    embed_seconds = round(time.perf_counter() - started, 2)
    labels = train.labels.numpy()
    values, seconds = timed_scores(names, features, labels, probs)
    row = {
        "model": spec,
        "encoder": source.description,
        "features": int(features.shape[1]),
        "train_items": len(train),
        "test_items": len(test),
        "source_head": probs is not None,
        "scores": values,
        "score_seconds": seconds,
        "embed_seconds": embed_seconds,
    }
    if r.finetune:
        from fewshot.transfer.fit_eval import fit_and_test

        outcome = fit_and_test(
            source.encoder,
            train,
            test,
            r.strategy,
            _config(r, device),
            source.name,
            torch.from_numpy(features),
            r.progress,
        )
        row.update(accuracy=outcome.accuracy, finetune_seconds=outcome.seconds)
    return row


def _config(r: RankRequest, device):
    from fewshot.transfer.finetune import FinetuneConfig

    config = FinetuneConfig(
        epochs=r.epochs,
        lr=r.lr,
        head_lr=r.head_lr,
        batch_size=r.batch_size,
        freeze_batchnorm=r.freeze_batchnorm,
        seed=r.seed,
        device=str(device),
    )
    config.check()
    return config


def _best(rows: list[dict], key) -> str | None:
    scored = [(key(row), row["model"]) for row in rows if key(row) is not None]
    return max(scored)[1] if scored else None


def write_json(path: Path, report: dict) -> None:
    """The report, atomically, as indented JSON (NaN as null)."""
    import json

    from fewshot.fileio import atomic_write_bytes
    from fewshot.runs import json_safe

    atomic_write_bytes(path, (json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n").encode())
