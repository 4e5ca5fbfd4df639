"""`fewshot adapt` as a library call: labelled source data, unlabelled target data -> a model.

The result is a fixed-class classifier checkpoint (``learner = "classifier"``) that
`fewshot predict` and `fewshot eval` load like a fine-tuned one; its metadata's ``adapt``
entry records the method, the chosen hyperparameters, the source-only and adapted scores and
which of the two models the file holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError


@dataclass
class AdaptRequest:
    """The settings of one adaptation run (the options of `fewshot adapt`)."""

    source: str
    target: str
    method: str
    encoder: str | None = None  # None: the shipped Omniglot ProtoNet's encoder
    params: list[str] = field(default_factory=list)  # NAME=VALUE hyperparameters of the method
    source_epochs: int = 10
    epochs: int = 10
    lr: float = 0.01
    batch_size: int = 64
    augment: bool = True
    select: str = "im"
    keep: str = "auto"
    target_labels: bool = True
    target_shift: str | None = None  # a shift of fewshot.data.shifts applied to the target items
    out: Path = Path("runs/adapted.safetensors")
    split: str | None = None
    source_subset: str = "all"
    target_subset: str = "all"
    clip_model: str | None = None
    pretrained: str | None = None
    image_size: int | None = None
    seed: int = 0
    device: str = "auto"
    data_dir: Path | None = None
    resume: bool = True
    progress: bool | None = None


def parse_params(method: str, given: list[str]) -> dict[str, Any]:
    """``["eps=0.1", "center=false"]`` -> typed values, each cast to the type of its default."""
    from fewshot.adapt import ADAPTERS

    if method not in ADAPTERS:
        raise FewshotError(f"unknown --method {method!r}: choose one of {', '.join(ADAPTERS.names())}")
    defaults = ADAPTERS.get(method).param_defaults()
    params: dict[str, Any] = {}
    for item in given:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in defaults:
            allowed = ", ".join(defaults) or "none"
            raise FewshotError(
                f"--param {item!r}: give NAME=VALUE with NAME a hyperparameter of {method} ({allowed})"
            )
        params[name] = _cast(name, text.strip(), defaults[name])
    return params


def _cast(name: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        return type(default)(text) if default is not None else float(text)
    except ValueError:
        raise FewshotError(f"--param {name}={text}: not a {type(default).__name__}") from None


def run_adapt(request: AdaptRequest) -> dict[str, Any]:
    """Check the settings, build the encoder, load both data sets, adapt and write the model.
    Returns the report (source-only beside adapted, the scores, negative transfer, the file)."""
    import torch

    from fewshot.adapt.config import AdaptConfig
    from fewshot.adapt.run import adapt, check_classes, check_method
    from fewshot.device import resolve_device
    from fewshot.runs import check_output_file
    from fewshot.transfer.sources import preprocessing_record, weights_provenance

    r = request
    params = parse_params(r.method, r.params)
    if r.target_shift is not None:
        from fewshot.data.shifts import shift_named

        shift_named(r.target_shift)
    check_output_file(r.out, "--out")
    device = resolve_device(r.device)
    config = AdaptConfig(
        method=r.method, params=params, source_epochs=r.source_epochs, epochs=r.epochs, lr=r.lr,
        batch_size=r.batch_size, augment=r.augment, select=r.select, keep=r.keep, seed=r.seed,
        device=str(device),
    )  # fmt: skip
    config.check()
    source, source_items = _source_and_items(r, device)
    check_method(config, source.encoder, source.name)
    target_items = _target_items(r, source)
    check_classes(source_items, target_items)
    torch.manual_seed(r.seed)
    extra = {"preprocessing": preprocessing_record(source), "source_encoder": source.description}
    extra.update(weights_provenance(source.encoder))
    init = _init_classifier(source, source_items)
    _, result, _ = adapt(
        source.encoder, source_items, target_items, config, out=r.out, encoder_name=source.name,
        metadata=extra, progress=r.progress, resume=r.resume, init=init, use_target_labels=r.target_labels,
    )  # fmt: skip
    report = {k: v for k, v in asdict(result).items() if k != "history"}
    return {"encoder": source.description, "source": r.source, "target": r.target, **report}


def _source_and_items(r: AdaptRequest, device):
    """The encoder and the labelled source items prepared for it (as `fewshot finetune` does);
    an embedding file's features come with the identity encoder (frozen-feature methods)."""
    from fewshot.data.loading import is_embedding_file
    from fewshot.workflows.finetune import FinetuneRequest, _source_and_items

    if is_embedding_file(r.source) and r.encoder in (None, "identity"):
        from fewshot.build import embedding_source

        return embedding_source(r.source, r.source_subset, r.split, r.seed)

    fields = {
        "data": r.source, "encoder": r.encoder, "split": r.split, "subset": r.source_subset,
        "clip_model": r.clip_model, "pretrained": r.pretrained, "image_size": r.image_size,
        "seed": r.seed, "data_dir": r.data_dir,
    }  # fmt: skip
    return _source_and_items(
        FinetuneRequest(**fields), device, {"model": r.clip_model, "pretrained": r.pretrained}
    )


def _target_items(r: AdaptRequest, source):
    from fewshot.build import load_for_encoder
    from fewshot.data.loading import is_embedding_file, load_dataset

    if is_embedding_file(r.target) and source.name == "identity":
        items = load_dataset(r.target, r.target_subset, r.split, seed=r.seed)
    else:
        items = load_for_encoder(source, r.target, r.target_subset, r.split, r.data_dir, r.seed)
    if len(items) == 0:
        raise FewshotError(f"--target {r.target} holds no readable image")
    if r.target_shift is not None:
        from fewshot.data.shifts import shift_data

        items = shift_data(items, r.target_shift, r.seed)
    return items


def _init_classifier(source, items):
    """A fixed-class classifier checkpoint of exactly the source classes starts with its head."""
    learner = source.learner
    names = list(getattr(learner, "class_names", []) or [])
    plain = not getattr(learner, "normalize", True) and not getattr(learner, "centered", True)
    return learner if names == list(items.class_names) and plain and hasattr(learner, "head") else None
