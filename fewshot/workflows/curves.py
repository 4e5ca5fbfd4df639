"""`fewshot curves` as a library call: fine-tuning a pretrained encoder against the same
network from scratch, at several numbers of labelled images per class, over seeds.

Items: ``test_per_class`` items of every class are held out (seeded by ``seed``) and every
run is tested on them after every epoch; training items are drawn from the rest, ``size``
per class, nested (seed ``s`` draws one order per class and a size takes its first items,
so 5 per class extends 2 per class). ``all`` trains on the whole rest. Pretrained and
scratch runs of one seed and size see the same items (paired). No early stopping and no
selection on the test items: the accuracy is the last epoch's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fewshot.errors import FewshotError

SIZES = "1,2,5,10,20,50,100,all"


@dataclass
class CurvesRequest:
    """The settings of `fewshot curves`."""

    data: str
    encoder: str | None = None  # anything --encoder takes, optionally NAME[option=value;...]
    sizes: str = SIZES
    seeds: int = 3
    strategy: str = "full"
    epochs: int = 10
    lr: float = 1e-4
    scratch_lr: float = 1e-3
    head_lr: float = 1e-3
    batch_size: int = 32
    freeze_batchnorm: bool = False  # pretrained runs only: scratch has no statistics to keep
    test_per_class: int = 100
    curve_size: str | None = None  # the size whose learning curves are plotted (default: largest)
    subset: str = "all"
    split: str | None = None
    image_size: int | None = None
    seed: int = 0
    device: str = "auto"
    data_dir: Path | None = None
    out: Path | None = None  # JSON report
    plot: Path | None = None  # PNG: <plot> (learning curves) and <stem>-data<suffix> (data efficiency)
    progress: bool | None = None


def parse_sizes(text: str) -> list[int | None]:
    """``"1,2,all"`` -> ``[1, 2, None]`` (None: every training item), ascending, no repeats."""
    sizes: list[int | None] = []
    for part in (p.strip() for p in text.split(",")):
        if part == "all":
            sizes.append(None)
        elif part.isdigit() and int(part) >= 1:
            sizes.append(int(part))
        else:
            raise FewshotError(f"--sizes {text!r}: {part!r} is not a positive whole number or 'all'")
    if len(set(sizes)) != len(sizes):
        raise FewshotError(f"--sizes {text!r} names a size twice")
    return sorted(sizes, key=lambda s: float("inf") if s is None else s)


def size_label(size: int | None) -> str:
    return "all" if size is None else str(size)


def check_request(r: CurvesRequest) -> list[int | None]:
    from fewshot.runs import check_output_file
    from fewshot.transfer.candidates import parse_model
    from fewshot.transfer.strategies import STRATEGIES

    sizes = parse_sizes(r.sizes)
    if r.curve_size is not None and r.curve_size not in [size_label(s) for s in sizes]:
        raise FewshotError(f"--curve-size {r.curve_size} is not one of --sizes {r.sizes}")
    if r.strategy not in STRATEGIES:
        raise FewshotError(f"--strategy {r.strategy!r}: curves train, choose one of {', '.join(STRATEGIES)}")
    if r.seeds < 1 or r.test_per_class < 1:
        raise FewshotError("--seeds and --test-per-class must be at least 1")
    if r.encoder is not None:
        from fewshot.workflows.rank_models import check_encoder_name

        check_encoder_name(parse_model(r.encoder)[0], "--encoder")
    if r.out is not None:
        check_output_file(r.out, "--out", suffix=".json")
    if r.plot is not None:
        check_output_file(r.plot, "--plot", suffix=".png")
    return sizes


def run_curves(request: CurvesRequest) -> dict[str, Any]:
    """Every (init, size, seed) run, then summaries, gaps, learning curves; JSON and PNGs."""
    from fewshot.device import resolve_device
    from fewshot.progress import progress_bar
    from fewshot.transfer.candidates import parse_model, with_image_size
    from fewshot.transfer.target import Target, take

    r = request
    sizes = check_request(r)
    device = resolve_device(r.device)
    name, options = parse_model(r.encoder) if r.encoder else (None, {})
    options = with_image_size(name, options, r.image_size) if name else options
    target = Target(r.data, r.subset, r.split, r.data_dir, r.seed, None, r.image_size)
    source = target.build(name, device, options, r.seed)
    pool = target.pool(source)
    test_idx, rest = _held_out(pool.labels.numpy(), r.test_per_class, r.seed)
    test = target.prepare(source, take(pool, test_idx))
    runs = []
    plan = [
        (seed, size, init) for seed in range(r.seeds) for size in sizes for init in ("pretrained", "scratch")
    ]
    with progress_bar(r.progress, total=len(plan), desc="curves", unit="run") as bar:
        for seed, size, init in plan:
            train = target.prepare(
                source, take(pool, _training(pool.labels.numpy(), rest, size, r.seed + seed))
            )
            encoder = (
                copy.deepcopy(source.encoder)
                if init == "pretrained"
                else _scratch(name, options, source, target, device, seed)
            )
            runs.append(_run(init, size, seed, encoder, train, test, source.name, r, device))
            bar.update(1)
    report = summarise(runs, sizes, r)
    report.update(data=r.data, encoder=source.description, test_items=len(test), classes=pool.n_classes)
    if r.out is not None:
        _write_json(r.out, report)
    if r.plot is not None:
        from fewshot.transfer.curve_plots import plot_curves

        report["plots"] = plot_curves(report, r.plot)
    return report


def _held_out(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from fewshot.transfer.target import stratified_indices

    test = stratified_indices(labels, per_class, seed + 1_000_003)
    counts = np.bincount(labels[test], minlength=int(labels.max()) + 1)
    if (np.bincount(labels) - counts < 1).any():
        raise FewshotError(f"--test-per-class {per_class} leaves a class with no training item")
    return test, np.setdiff1d(np.arange(labels.shape[0]), test)


def _training(labels: np.ndarray, rest: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """Nested draws: one order of each class's remaining items per seed, its first ``size``."""
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(rest[labels[rest] == c])[:size] for c in np.unique(labels[rest])]
    return np.sort(np.concatenate(picked))


def _scratch(name, options, source, target, device, seed: int):
    """The same network with new random weights: built without pretrained weights when its
    constructor takes ``pretrained``, else every layer's own ``reset_parameters`` (seeded)."""
    from fewshot.build import encoder_parameters, split_spec
    from fewshot.encoders import ENCODERS
    from fewshot.seeding import seeded

    family = split_spec(name)[0] if name else None
    if family in ENCODERS and "pretrained" in encoder_parameters(family):
        return target.build(name, device, {**options, "pretrained": "none"}, seed=seed + 1).encoder
    encoder = copy.deepcopy(source.encoder)
    with seeded(seed + 1):
        for module in encoder.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    return encoder


def _config(r: CurvesRequest, init: str, seed: int, device):
    """One run's fine-tuning settings: the pretrained or scratch learning rate; BatchNorm
    statistics kept (``freeze_batchnorm``) for pretrained runs only."""
    from fewshot.transfer.finetune import FinetuneConfig

    pretrained = init == "pretrained"
    config = FinetuneConfig(
        epochs=r.epochs,
        lr=r.lr if pretrained else r.scratch_lr,
        head_lr=r.head_lr,
        batch_size=r.batch_size,
        freeze_batchnorm=r.freeze_batchnorm and pretrained,
        seed=r.seed + seed,
        device=str(device),
    )
    config.check()
    return config


def _run(init, size, seed, encoder, train, test, encoder_name, r: CurvesRequest, device) -> dict:
    from fewshot.transfer.curves import area_under_curve, steps_to_fraction
    from fewshot.transfer.fit_eval import fit_and_test

    outcome = fit_and_test(encoder, train, test, r.strategy, _config(r, init, seed, device), encoder_name)
    return {
        "init": init,
        "size": size_label(size),
        "seed": seed,
        "train_items": len(train),
        "accuracy": outcome.accuracy,
        "steps_to_90": steps_to_fraction(outcome.curve),
        "aulc": area_under_curve(outcome.curve),
        "curve": outcome.curve,
        "seconds": outcome.seconds,
    }


def summarise(runs: list[dict], sizes: list[int | None], r: CurvesRequest) -> dict[str, Any]:
    """Per size: each init's summary and the negative-transfer gap; the learning curves."""
    from fewshot.transfer.curves import mean_curve, negative_transfer_gap, summarise_runs

    table = []
    for size in map(size_label, sizes):
        group = {
            init: [x for x in runs if x["size"] == size and x["init"] == init]
            for init in ("pretrained", "scratch")
        }
        table.append(
            {
                "size": size,
                "train_items": group["pretrained"][0]["train_items"],
                **{init: summarise_runs(g) for init, g in group.items()},
                "negative_transfer": negative_transfer_gap(
                    [x["accuracy"] for x in group["pretrained"]], [x["accuracy"] for x in group["scratch"]]
                ),
            }
        )
    curve_size = r.curve_size or size_label(sizes[-1])
    learning = {
        init: mean_curve([x["curve"] for x in runs if x["size"] == curve_size and x["init"] == init])
        for init in ("pretrained", "scratch")
    }
    settings = {
        k: getattr(r, k) for k in ("strategy", "epochs", "lr", "scratch_lr", "head_lr", "batch_size", "seeds")
    }
    return {
        "settings": settings,
        "sizes": table,
        "learning_curves": {"size": curve_size, **learning},
        "runs": runs,
    }


def _write_json(path: Path, report: dict) -> None:
    import json

    from fewshot.fileio import atomic_write_bytes
    from fewshot.runs import json_safe

    atomic_write_bytes(path, (json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n").encode())
