"""Few-shot accuracy on Fashion-MNIST: 5-way 1-shot and 5-shot, three feature sources, every
method on the same episodes (issue #15, "Measured").

Data: the 10,000 official Fashion-MNIST test images (`--dataset fashion-mnist`, split
``official``, subset ``test``: the library's default few-shot protocol for it), 5-way episodes
over its 10 classes, 15 queries per class, 1,000 episodes per number of shots, 95% CI
(1.96 standard errors over episodes). The episode files are drawn once (seed ``--seed``) and
shared by every source and method (`fewshot.transfer.compare.episode_files_for`).

Feature sources, each embedding every test image ONCE (`Encoder.encode_batched` with
``--batch-size``, inside `fewshot.transfer.compare.compare_methods`, which hands the one
embedding to every method and episode of an encoder):

- ``efficientnet-lite0``: the bundled ImageNet-1k weights (``fewshot[pretrained]``), pooled
  1280-d features; the 28x28 grey images go through the encoder's own input layer
  (`fewshot.encoders.pretrained.ImageInput`: grey -> RGB, bilinear resize to ``--image-size``,
  ImageNet mean/std), batch by batch, so 224 px copies never exist for all images at once;
- ``conv4-omniglot``: the shipped ProtoNet Conv-4 (``fewshot/models/protonet-conv4-omniglot
  .safetensors``, trained on Omniglot, 28 px grey), 64-d;
- ``pixels``: the identity encoder on the flattened 784 pixels in [0, 1].

Methods (default): protonet (nearest class mean of the frozen features), simpleshot (CL2N),
linear-probe, and the transductive bd-cspn, tim, pt-map, laplacianshot and
transductive-finetune (marked *). TIM (1,000 Adam steps per block of up to 256 episodes) is
by far the slowest: in the smoke run on a loaded 2-core machine one 5-episode block took 2 min.
Output: a Markdown table per source and one overall,
``--out`` JSON (rows, settings, machine), ``--plot`` PNG (grouped bars with 95% CI).

Full run (the lead's; about 10k EfficientNet-Lite0 forwards at 224 px plus 8 methods x 2 x
1,000 episodes per source):

    FEWSHOT_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/bench_fashion_fewshot.py \
        --out benchmarks/fashion-fewshot.json --plot benchmarks/fashion-fewshot.png

Smoke run (a minute or two): ``--episodes 20 --limit-test 500``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _common as common

SOURCES = ("efficientnet-lite0", "conv4-omniglot", "pixels")
METHODS = (
    "protonet",
    "simpleshot",
    "linear-probe",
    "bd-cspn",
    "tim",
    "pt-map",
    "laplacianshot",
    "transductive-finetune",
)


def build_source(name: str, image_size: int | None, seed: int):
    """``(EncoderSource, embedding batch size)`` of one feature source, through `fewshot.build`."""
    from fewshot.build import build_encoder

    if name == "efficientnet-lite0":
        return build_encoder("efficientnet-lite0", "cpu", {"image_size": image_size}, seed=seed)
    if name == "conv4-omniglot":
        from fewshot.models import DEFAULT_CHECKPOINT

        return build_encoder(str(DEFAULT_CHECKPOINT), "cpu")
    if name == "pixels":
        return build_encoder("identity", "cpu", {"embed_dim": 28 * 28}, seed=seed)
    raise SystemExit(f"error: --sources {name}: choose from {', '.join(SOURCES)}")


def load_test(source, data_dir: str | None, limit: int | None, seed: int):
    """The official test images as this source expects them (28 px grey for all three: the
    ImageNet encoder resizes inside its input layer), limited to a stratified subset."""
    from fewshot.build import load_for_encoder

    data = load_for_encoder(source, "fashion-mnist", "test", "official", data_dir, seed)
    return common.limit_test(data, limit, seed)


def run_source(name, args, files_for, methods) -> tuple[list[dict], dict]:
    """Every method on one source: rows (dicts) and the source's record (embedding time)."""
    import torch

    from fewshot.build import build_learner
    from fewshot.transfer.compare import compare_methods, format_table

    source = build_source(name, args.image_size, args.seed)
    data = load_test(source, args.data_dir, args.limit_test, args.seed)
    files = files_for(data)
    learners = {m: build_learner(m, source.encoder, seed=args.seed) for m in methods}
    started = time.perf_counter()
    # the methods share source.encoder: compare_methods embeds the images once, for all of them
    rows = compare_methods(learners, data, files, "cpu", progress=args.progress, batch_size=args.batch_size)
    embed_s = time.perf_counter() - started - sum(r.seconds for r in rows)
    embed_dim = int(source.encoder.embed_dim)
    record = {
        "source": name,
        "description": source.description,
        "items": len(data),
        "embed_dim": embed_dim,
        "embed_seconds": round(embed_s, 2),
        "embed_images_per_s": round(len(data) / embed_s, 1),
        "torch_threads": torch.get_num_threads(),
    }
    print(f"\n### {name}: {source.description}, {len(data)} test images, embedded in {embed_s:.1f} s\n")
    print(format_table(rows))
    return [{"source": name, **r.as_dict()} for r in rows], record


def overall_table(rows: list[dict], shots: list[int]) -> str:
    """Methods x (source, shots): ``accuracy +- ci95`` in percent."""
    sources = list(dict.fromkeys(r["source"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["source"], r["method"], r["shots"]): r for r in rows}
    headers = ["method"] + [f"{s} {k}-shot" for s in sources for k in shots]
    body = []
    for m in methods:
        mark = " *" if any(r["transductive"] for r in rows if r["method"] == m) else ""
        line = [m + mark]
        for s in sources:
            for k in shots:
                r = cell.get((s, m, k))
                line.append("-" if r is None else f"{100 * r['mean']:.2f} +- {100 * r['ci95']:.2f}")
        body.append(line)
    return (
        common.markdown_table(headers, body) + "\n\n\\* transductive: uses each episode's unlabelled queries"
    )


def plot(rows: list[dict], shots: list[int], path: str, title: str) -> None:
    """One panel per number of shots: grouped bars (method x source) with 95% CI."""
    plt = common.pyplot()
    if plt is None:
        return
    import numpy as np

    sources = list(dict.fromkeys(r["source"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, len(shots), figsize=(6 * len(shots), 4.4), dpi=110, squeeze=False)
    width = 0.8 / len(sources)
    for ax, k in zip(axes[0], shots, strict=True):
        for j, s in enumerate(sources):
            mine = {r["method"]: r for r in rows if r["source"] == s and r["shots"] == k}
            means = [100 * mine[m]["mean"] if m in mine else np.nan for m in methods]
            cis = [100 * mine[m]["ci95"] if m in mine else 0.0 for m in methods]
            ax.bar(
                np.arange(len(methods)) + (j - (len(sources) - 1) / 2) * width,
                means,
                width,
                yerr=cis,
                capsize=2,
                label=s,
            )
        ax.set_xticks(np.arange(len(methods)))
        ax.set_xticklabels(methods, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("accuracy (%), 95% CI")
        ax.set_title(f"5-way {k}-shot", fontsize=10)
        ax.set_ylim(0, 100)
        ax.axhline(20, color="grey", lw=0.8, ls=":")  # chance
        ax.grid(True, axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    common.save_figure(fig, path)
    print(f"wrote {path}")


def finished_sources(path: str, settings: dict) -> tuple[list[dict], list[dict]]:
    """``(rows, source records)`` an interrupted run with the same settings left in ``path``."""
    import json

    def same(a: dict) -> dict:  # which sources run, and threads, do not change a source's rows
        return {k: v for k, v in a.items() if k not in ("sources", "threads")}

    if not Path(path).is_file():
        return [], []
    previous = json.loads(Path(path).read_text())
    if same(previous.get("settings", {})) != same(json.loads(json.dumps(settings))):
        return [], []
    return list(previous.get("rows", [])), list(previous.get("sources", []))


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--shots", default="1,5", help="comma-separated (default 1,5)")
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--sources", default=",".join(SOURCES), help=f"comma-separated from {','.join(SOURCES)}")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated learner names")
    p.add_argument("--limit-test", type=int, default=None, help="a class-stratified subset of N test images")
    p.add_argument("--image-size", type=int, default=None, help="EfficientNet input side (default: its 224)")
    p.add_argument("--batch-size", type=int, default=64, help="embedding batch (default 64)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="default: FEWSHOT_DATA_DIR")
    p.add_argument("--out", default="benchmarks/fashion-fewshot.json")
    p.add_argument("--plot", default="benchmarks/fashion-fewshot.png")
    p.add_argument("--progress", action="store_true", help="progress bars")
    args = p.parse_args(argv)
    args.shots = [int(k) for k in args.shots.split(",")]
    args.sources = [s for s in args.sources.split(",") if s]
    args.methods = [m for m in args.methods.split(",") if m]
    return check(p, args)


def check(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Bad options fail here, before any loading."""
    from fewshot.learners import LEARNERS

    for s in args.sources:
        if s not in SOURCES:
            p.error(f"--sources {s}: choose from {', '.join(SOURCES)}")
    from fewshot.errors import FewshotError
    from fewshot.workflows.compare import check_methods

    for m in args.methods:
        if m not in LEARNERS.names():
            p.error(f"--methods {m}: not a learner ({', '.join(LEARNERS.names())})")
    try:
        check_methods(args.methods)  # frozen-encoder methods only, as `fewshot compare`
    except FewshotError as err:
        p.error(str(err))
    if args.episodes < 1 or min(args.shots) < 1 or args.ways < 2 or args.queries < 1:
        p.error("--episodes, --shots and --queries must be at least 1, --ways at least 2")
    if not args.plot.endswith(".png"):
        p.error("--plot must be a .png file")
    return args


def main(argv=None) -> None:
    import torch

    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from fewshot.transfer.compare import episode_files_for

    info = common.machine()
    print(f"# Few-shot on Fashion-MNIST (official test images)\n\nmachine: {common.machine_line(info)}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fashion-fewshot-") as tmp:
        episode_files: dict = {}

        def files_for(data):
            # every source loads the same test items in the same order: one set of episode files
            if not episode_files:
                episode_files.update(
                    episode_files_for(
                        data.labels, args.shots, args.ways, args.queries, args.episodes, args.seed, Path(tmp)
                    )
                )
            return episode_files

        settings = {k: v for k, v in vars(args).items() if k not in ("out", "plot", "progress")}
        rows, records = finished_sources(args.out, settings)
        for name in args.sources:
            if any(r["source"] == name for r in records):
                print(f"\n### {name}: done before, kept (from {args.out})")
                continue
            r, record = run_source(name, args, files_for, args.methods)
            rows += r
            records.append(record)
            # each finished source is on disk at once: a stopped run resumes with the next one
            partial = {"settings": settings, "sources": records, "rows": rows, "partial": True}
            common.write_json(args.out, partial)
    title = (
        f"Fashion-MNIST test ({records[0]['items']} images), {args.ways}-way, {args.queries} queries, "
        f"{args.episodes} episodes"
    )
    print(f"\n## All sources: {title}\n\n{overall_table(rows, args.shots)}\n")
    print(
        common.markdown_table(
            ["source", "images", "embed dim", "embed s", "images/s"],
            [
                [r["source"], r["items"], r["embed_dim"], r["embed_seconds"], r["embed_images_per_s"]]
                for r in records
            ],
        )
    )
    total = time.perf_counter() - started
    print(f"\ntotal {total:.0f} s")
    results = {
        "title": title,
        "settings": settings,
        "machine": info,
        "sources": records,
        "rows": rows,
        "seconds": round(total, 1),
    }
    common.write_json(args.out, results)
    print(f"wrote {args.out}")
    plot(rows, args.shots, args.plot, title)


if __name__ == "__main__":
    sys.exit(main())
