"""`fewshot continual` as a library call: a labelled data set -> a stream of experiences ->
a strategy trained on them one by one -> the accuracy matrix, its metrics, a plot and a
fixed-class model for `fewshot predict`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError

#: options that belong to one strategy or another (None: not given)
STRATEGY_OPTIONS = (
    "memory",
    "buffer",
    "ace",
    "augment",
    "distill",
    "rebalance",
    "replay_ratio",
    "ewc_lambda",
    "online",
    "decay",
    "mas_lambda",
    "alpha",
    "temperature",
    "scale",
)


@dataclass
class ContinualRequest:
    """The settings of one continual run (the options of `fewshot continual`)."""

    data: str
    scenario: str = "class-il"
    tasks: int | None = 5  # None: one experience per group / domain
    strategy: str = "replay"
    encoder: str | None = "conv4"
    split_by: str = "classes"  # classes (seeded or --class-order) or group (Omniglot: alphabets)
    class_order: str | None = None  # "3,1,0,...": every class id once
    shifts: str | None = None  # domain-il: "none,rotation,blur-contrast,inversion"
    test_fraction: float = 0.2  # data sets without a test part: items held out per class
    max_per_class: int | None = None
    max_test_per_class: int | None = None
    epochs: int = 1
    lr: float = 0.01
    batch_size: int = 32
    optimizer: str = "sgd"
    precision: str = "auto"  # auto: bf16 autocast where the CPU timing check finds it faster
    memory: int | None = None
    buffer: str | None = None
    ace: bool | None = None
    augment: str | None = None
    distill: float | None = None
    rebalance: int | None = None
    replay_ratio: int | None = None
    ewc_lambda: float | None = None
    online: bool | None = None
    decay: float | None = None
    mas_lambda: float | None = None
    alpha: float | None = None
    temperature: float | None = None
    scale: float | None = None
    split: str | None = None
    subset: str | None = None
    image_size: int | None = None
    seed: int = 0
    device: str = "auto"
    data_dir: Path | None = None
    out: Path = Path("runs/continual.safetensors")
    plot: bool = True
    resume: bool = True
    progress: bool | None = None


def build_strategy(name: str, options: dict[str, Any] | None = None, scenario: str | None = None):
    """The strategy registered as `name` with the given options (None values dropped); an
    option it does not take, or a scenario it does not apply to, is refused in one line."""
    from fewshot.build.encoders import option_flag
    from fewshot.continual import STRATEGIES

    if name not in STRATEGIES:
        raise FewshotError(f"unknown --strategy {name!r}: choose one of {', '.join(STRATEGIES.names())}")
    cls = STRATEGIES.get(name)
    given = {k: v for k, v in (options or {}).items() if v is not None}
    for key in given:
        if key not in cls.param_names():
            takes = ", ".join(option_flag(p) for p in cls.param_names()) or "no options"
            raise FewshotError(f"{option_flag(key)} does not apply to the {name} strategy (it takes {takes})")
    if scenario is not None and scenario not in cls.scenarios:
        raise FewshotError(f"--strategy {name} needs --scenario {' or '.join(cls.scenarios)}")
    return cls(**given)


def check_request(r: ContinualRequest) -> None:
    """Every check that needs no data, before anything is loaded or written."""
    from fewshot.continual.base import TrainSettings
    from fewshot.continual.scenarios import SCENARIOS
    from fewshot.runs import check_output_file

    if r.scenario not in SCENARIOS:
        raise FewshotError(f"unknown --scenario {r.scenario!r}: choose one of {', '.join(SCENARIOS)}")
    if r.split_by not in ("classes", "group"):
        raise FewshotError(f"--split-by must be classes or group, got {r.split_by!r}")
    if r.tasks is not None and r.tasks < 1:
        raise FewshotError(f"--tasks must be at least 1, got {r.tasks}")
    if not 0 < r.test_fraction < 1:
        raise FewshotError(f"--test-fraction must be between 0 and 1, got {r.test_fraction}")
    if r.shifts is not None and r.scenario != "domain-il":
        raise FewshotError("--shifts makes domains: it needs --scenario domain-il")
    if r.shifts is not None:
        from fewshot.data.shifts import SHIFTS

        for name in r.shifts.split(","):
            if name not in SHIFTS and name != "none":
                raise FewshotError(
                    f"--shifts: unknown shift {name!r}: choose among none, {', '.join(SHIFTS)}"
                )
    if r.scenario == "domain-il" and r.shifts is None and not Path(r.data).expanduser().is_dir():
        raise FewshotError(
            "--scenario domain-il needs --shifts, or DATA a folder with one subfolder per domain"
        )
    _class_order(r.class_order)
    TrainSettings(r.epochs, r.lr, r.batch_size, r.optimizer, precision=r.precision).check()
    build_strategy(r.strategy, _strategy_options(r), r.scenario)
    check_output_file(r.out, "--out")


def _strategy_options(r: ContinualRequest) -> dict[str, Any]:
    return {k: getattr(r, k) for k in STRATEGY_OPTIONS}


def _class_order(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise FewshotError(f"--class-order must be class ids separated by commas, got {text!r}") from None


def run_continual(request: ContinualRequest) -> dict[str, Any]:
    """Check, build the encoder and the stream, train the strategy on it (resumable at
    ``request.out``) and return the report: the accuracy matrix, the metrics, the files."""
    import torch

    from fewshot.continual.base import TrainSettings
    from fewshot.continual.trainer import ContinualRun, plot_path, report_path, train_continual
    from fewshot.device import resolve_device
    from fewshot.workflows.continual_data import load_stream

    r = request
    check_request(r)
    device = resolve_device(r.device)
    torch.manual_seed(r.seed)
    source, stream, digests = load_stream(r, device)
    strategy = build_strategy(r.strategy, _strategy_options(r), r.scenario)
    settings = TrainSettings(r.epochs, r.lr, r.batch_size, r.optimizer, str(device), r.precision)
    task = ContinualRun(stream, strategy, source.encoder, settings, r.seed, _metadata(source, stream))
    report = train_continual(
        task, r.out, _run_settings(r, source, stream, digests), r.resume, r.progress, r.plot
    )
    return {
        **report,
        "strategy": r.strategy,
        "encoder": source.description,
        "checkpoint": str(r.out),
        "report": str(report_path(r.out)),
        "plot": str(plot_path(r.out)) if r.plot else None,
    }


def _metadata(source, stream) -> dict[str, Any]:
    from fewshot.transfer.sources import preprocessing_record, weights_provenance

    first = stream.experiences[0].train
    return {
        "encoder_name": source.name,
        "preprocessing": preprocessing_record(source),
        "source_encoder": source.description,
        "dataset": {k: v for k, v in first.info.items() if k != "experience"},
        **weights_provenance(source.encoder),
    }


def _run_settings(r: ContinualRequest, source, stream, digests: dict) -> dict[str, Any]:
    from fewshot.checkpoints import weights_digest
    from fewshot.runs import json_safe

    skip = {"out", "resume", "progress", "device", "data_dir", "plot"}
    request = {f.name: getattr(r, f.name) for f in fields(r) if f.name not in skip}
    return json_safe(
        {
            "continual": request,
            "encoder": source.name,
            "encoder_sha256": weights_digest(source.encoder.state_dict()),
            "stream": stream.describe(),
            "data": digests,
        }
    )


__all__ = ["STRATEGY_OPTIONS", "ContinualRequest", "build_strategy", "check_request", "run_continual"]
