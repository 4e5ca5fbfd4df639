"""`fewshot representations` as a library call: a 2-D map of an encoder's features coloured
by class, and linear probing per block.

Items: ``per_class`` of every class of the data set's fine-tuning part (seeded); the probe
trains on ``1 - val_fraction`` of each class and is tested on the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError


@dataclass
class RepresentationsRequest:
    """The settings of `fewshot representations`."""

    data: str
    encoder: str | None = None
    per_class: int | None = 50
    method: str = "tsne"
    map: Path | None = None  # PNG of the 2-D map
    probe: bool = False
    probe_plot: Path | None = None  # PNG of probe accuracy per block
    val_fraction: float = 0.3
    subset: str = "all"
    split: str | None = None
    image_size: int | None = None
    seed: int = 0
    device: str = "auto"
    data_dir: Path | None = None
    out: Path | None = None
    progress: bool | None = None


def check_request(r: RepresentationsRequest) -> None:
    from fewshot.runs import check_output_file
    from fewshot.transfer.candidates import parse_model
    from fewshot.transfer.representations import MAP_METHODS
    from fewshot.workflows.rank_models import check_encoder_name

    if r.method not in MAP_METHODS:
        raise FewshotError(f"--method {r.method!r}: choose one of {', '.join(MAP_METHODS)}")
    if r.map is None and not r.probe:
        raise FewshotError(
            "nothing to do: give --map FILE.png (the 2-D map) and/or --probe (per-block probes)"
        )
    if r.probe_plot is not None and not r.probe:
        raise FewshotError("--probe-plot needs --probe")
    if r.encoder is not None:
        check_encoder_name(parse_model(r.encoder)[0], "--encoder")
    for path, option, suffix in (
        (r.map, "--map", ".png"),
        (r.probe_plot, "--probe-plot", ".png"),
        (r.out, "--out", ".json"),
    ):
        if path is not None:
            check_output_file(path, option, suffix=suffix)
    if r.method == "umap":
        import importlib.util

        if importlib.util.find_spec("umap") is None:
            raise FewshotError("--method umap needs umap-learn (pip install umap-learn); tsne needs nothing")


def run_representations(request: RepresentationsRequest) -> dict[str, Any]:
    """The map (written to ``map``) and/or the probe rows; the report as a dict."""
    from fewshot.device import resolve_device
    from fewshot.transfer import representations as rep
    from fewshot.transfer.candidates import parse_model, with_image_size
    from fewshot.transfer.target import Target

    r = request
    check_request(r)
    device = resolve_device(r.device)
    name, options = parse_model(r.encoder) if r.encoder else (None, {})
    options = with_image_size(name, options, r.image_size) if name else options
    target = Target(r.data, r.subset, r.split, r.data_dir, r.seed, r.per_class, r.image_size)
    source, items = target.source_and_items(name, device, options, r.seed)
    encoder = source.encoder.to(device)
    report: dict[str, Any] = {"data": r.data, "encoder": source.description, "items": len(items)}
    if r.map is not None:
        features = encoder.encode_batched(items.data, progress=bool(r.progress)).numpy()
        coords = rep.feature_map(features, r.method, r.seed)
        title = f"{source.description} on {r.data}: {r.method} of {features.shape[1]}-d features"
        report["map"] = rep.plot_map(coords, items.labels.numpy(), items.class_names, r.map, title)
        report["method"] = r.method
    if r.probe:
        from fewshot.transfer.finetune import split_items

        train, test = split_items(items, r.val_fraction, r.seed)
        rows = rep.probe_layers(encoder, train, test)
        report.update(probe=rows, probe_train_items=len(train), probe_test_items=len(test))
        if r.probe_plot is not None:
            title = f"linear probe per block: {source.description} on {r.data}"
            report["probe_plot"] = rep.plot_probe(rows, r.probe_plot, title)
    if r.out is not None:
        from fewshot.workflows.rank_models import write_json

        write_json(r.out, report)
    return report
