"""Issue #19: the few-shot CLIP toolbox on the same episodes, no validation set.

Every method at 1/2/4/8/16 shots, ``--seeds`` episode seeds (one episode file per shots and
seed, shared by every method), accuracy with the 95% CI over all episodes, the spread over
seeds, and the time per episode (fit + scoring; the data are embedded once per encoder,
outside the clock). Data (``--dataset``):

- ``shapes``: the micro-CLIP's synthetic shapes folder (drawn here: ``--per-class`` images of
  each of the 24 classes, seed 1000, never the micro-CLIP's training seeds). 5-way episodes
  saturate (~98% zero-shot); ``--ways 24`` (every class in every episode) leaves room.
- ``fashion-mnist``: ``--per-class`` Fashion-MNIST test images of each of the 10 classes,
  written as PNG (from ``$FEWSHOT_DATA_DIR``): classes and words the micro-CLIP's text tower
  never saw, so its zero-shot prior is weak and the support set has to do the work.

Encoders: ``micro-clip`` (every method) and ``efficientnet-lite0`` image features (only what
needs no text tower: linear probe, SimpleShot, ProtoNet, Tip-Adapter(-F)'s cache alone;
the others are listed as "needs a text tower"); ``--clip-model NAME --pretrained TAG`` (any
open_clip name/tag, for users with weights) instead of the micro-CLIP.

``--timing`` instead measures CoOp's and CLIP-LoRA's training steps/s against a plain PyTorch
loop over the same frozen modules: the same batches, optimiser and schedule from the same
seed, checked to give the same losses; interleaved rounds, median; run it on a quiet machine.

    python benchmarks/bench_clip_adapters.py --ways 24 --episodes 10 --out /tmp/clip.json
    python benchmarks/bench_clip_adapters.py --timing --threads 1 --out /tmp/clip-timing.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, machine_line, markdown_table, write_json  # noqa: E402

CLIP_METHODS = [  # cheapest first: a partial run (written after each method) has the most rows
    "zeroshot", "tip-adapter", "tip-adapter-f", "linear-probe", "zs-lp", "clap", "lp++",
    "clip-adapter", "coop", "clip-lora", "cocoop",
]  # fmt: skip
IMAGE_ONLY = {  # row label -> (learner, options): what runs on image features alone
    "linear-probe": ("linear-probe", {}),
    "simpleshot": ("simpleshot", {}),
    "protonet": ("protonet", {}),
    "tip-adapter (cache)": ("tip-adapter", {"text": False}),
    "tip-adapter-f (cache)": ("tip-adapter-f", {"text": False}),
}
CACHE = Path("~/.cache/fewshot/bench/clip-adapters").expanduser()


def shapes_folder(per_class: int) -> Path:
    from fewshot.tools.shapes import make_folder

    folder = CACHE / f"shapes-{per_class}"
    if not (folder / "red circle").is_dir():
        make_folder(folder, per_class=per_class, seed=1000)
    return folder


def fashion_folder(per_class: int) -> Path:
    """The first ``per_class`` test images of every Fashion-MNIST class as PNG files."""
    from PIL import Image

    from fewshot.data.fashion_mnist import CLASS_NAMES, read_part
    from fewshot.data.paths import resolve_data_dir

    folder, done = CACHE / f"fashion-mnist-{per_class}", CACHE / f"fashion-mnist-{per_class}.done"
    if done.is_file():
        return folder
    images, labels = read_part(resolve_data_dir() / "fashion-mnist", "t10k")
    for c, name in enumerate(CLASS_NAMES):
        mine = folder / name.replace("/", " or ")  # "T-shirt/top" cannot be a folder name
        mine.mkdir(parents=True, exist_ok=True)
        for i, j in enumerate(np.flatnonzero(labels == c)[:per_class]):
            Image.fromarray(images[j], "L").save(mine / f"{i:05d}.png")
    done.write_text("")
    return folder


def data_folder(args) -> Path:
    if args.folder is not None:
        return args.folder
    return (fashion_folder if args.dataset == "fashion-mnist" else shapes_folder)(args.per_class)


def sources(args) -> list[tuple[str, str, dict, dict[str, tuple[str, dict]]]]:
    """``(label, encoder, options, methods)`` of every source to run; ``methods`` maps a row
    label to ``(learner name, learner options)``."""
    clip = {name: (name, {}) for name in CLIP_METHODS}
    if args.clip_model:
        options = {"model": args.clip_model, "pretrained": args.pretrained}
        chosen = [(f"{args.clip_model}/{args.pretrained}", "clip", options, clip)]
    else:
        chosen = [("micro-clip", "clip", {"model": "micro-clip"}, clip)]
    if not args.no_efficientnet:
        chosen.append(("efficientnet-lite0", "efficientnet-lite0", {}, IMAGE_ONLY))
    return chosen


def episode_files(labels, args, folder: Path) -> dict[tuple[int, int], Path]:
    from fewshot.sampling import EpisodeSampler

    files = {}
    for seed in range(args.seeds):
        for k in args.shots:
            sampler = EpisodeSampler(labels, args.ways, k, args.queries, episodes=args.episodes, seed=seed)
            files[(k, seed)] = sampler.save(folder / f"episodes-{args.ways}way-{k}shot-seed{seed}.npz")
    return files


def options_for(name: str, args) -> dict:
    if name == "clip-lora" and args.lora_iterations_per_shot is not None:
        return {"iterations_per_shot": args.lora_iterations_per_shot}
    return {}


def first_episodes(episodes, n: int):
    """The first ``n`` episodes of an `EpisodeFile` (the same episodes every method gets)."""
    import copy

    part = copy.copy(episodes)
    part.support, part.query, part.class_ids = (
        episodes.support[:n],
        episodes.query[:n],
        episodes.class_ids[:n],
    )
    part.n_episodes = min(n, episodes.n_episodes)
    return part


def run_method(label, method, source, data, files, embeddings, args) -> list[dict]:
    from fewshot.build import build_learner
    from fewshot.evaluation import confidence_interval_95, evaluate
    from fewshot.sampling import EpisodeFile

    name, options = method
    learner = build_learner(name, source.encoder, {**options, **options_for(name, args)}, seed=0)
    cached = embeddings if learner.kind == "embedding" else None
    rows = []
    for k in args.shots:
        accuracies, seconds, per_seed = [], 0.0, []
        for seed in range(args.seeds):
            sampler = EpisodeFile(files[(k, seed)], data.labels)
            if name == "clip-lora":  # the slowest by far: the first --lora-episodes of the same file
                sampler = first_episodes(sampler, args.lora_episodes)
            result = evaluate(learner, data, sampler=sampler, device="cpu", progress=False, embeddings=cached)
            accuracies += result.per_episode
            seconds += result.seconds
            per_seed.append(result.mean)
        rows.append({
            "method": label, "shots": k, "mean": float(np.mean(accuracies)),
            "ci95": confidence_interval_95(accuracies), "seed_std": float(np.std(per_seed)),
            "episodes": len(accuracies), "seconds_per_episode": seconds / len(accuracies),
        })  # fmt: skip
        print(f"  {label:22s} {k:2d}-shot {100 * rows[-1]['mean']:6.2f} +- {100 * rows[-1]['ci95']:.2f}"
              f"  {rows[-1]['seconds_per_episode']:.3f} s/episode", flush=True)  # fmt: skip
    return rows


def run_source(label, encoder, options, methods, args, folder, save=None) -> list[dict]:
    """Every method of one encoder; ``save(rows)`` after each method (a partial result on disk)."""
    from fewshot.build import build_encoder, load_for_encoder

    source = build_encoder(encoder, torch.device("cpu"), options, seed=0)
    data = load_for_encoder(source, str(folder), "all", None, None, 0)
    files = episode_files(data.labels, args, CACHE / "episodes" / folder.name)
    embeddings = source.encoder.encode_batched(data.data, None)
    rows = []
    print(f"{label}: {len(data.labels)} images, {len(data.class_names)} classes", flush=True)
    wanted = args.methods or [*CLIP_METHODS, *(n for n, _ in methods.values())]
    for row_label, method in methods.items():
        if method[0] in wanted:
            rows += [
                {**r, "source": label}
                for r in run_method(row_label, method, source, data, files, embeddings, args)
            ]
            if save is not None:
                save(rows)
    missing = [n for n in dict.fromkeys(wanted) if n not in {m for m, _ in methods.values()}]
    for name in missing:  # listed, so a reader sees which methods cannot run on image features
        note = "needs a text tower" if name in CLIP_METHODS else "not run on this encoder"
        rows += [{"method": name, "shots": k, "mean": None, "note": note} for k in args.shots]
    return rows


def table(rows: list[dict], shots: list[int]) -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["shots"]): r for r in rows}
    lines = []
    for m in methods:
        cells = []
        for k in shots:
            r = cell.get((m, k))
            cells.append(
                "n/a" if r is None or r["mean"] is None else f"{100 * r['mean']:.1f} +- {100 * r['ci95']:.1f}"
            )
        seconds = [cell[(m, k)].get("seconds_per_episode") for k in shots if (m, k) in cell]
        seconds = [s for s in seconds if s is not None]
        cells.append(f"{max(seconds):.2f}" if seconds else "-")
        lines.append([m, *cells])
    return markdown_table(["method", *[f"{k}-shot" for k in shots], "s/episode (max)"], lines)


def plot(rows: list[dict], path: Path, title: str, ways: int, queries: int) -> None:
    from fewshot.transfer.compare import CompareRow, plot_rows

    compare = [
        CompareRow(
            r["method"],
            r["shots"],
            ways,
            queries,
            r["mean"],
            r["ci95"],
            r["episodes"],
            r["seconds_per_episode"],
            "",
        )
        for r in rows
        if r.get("mean") is not None
    ]
    plot_rows(compare, path, title)


# -- steps/s against a plain PyTorch loop over the same frozen modules -------------------------


def _cosine(optimiser, iterations: int, min_lr: float = 0.0):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, iterations, eta_min=min_lr)


def _order(n: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=generator) if n > batch_size else torch.arange(n)


def coop_plain(encoder, names, features, labels, steps: int, seed: int = 0) -> list[float]:
    """CoOp's training written out by hand over open_clip's frozen text modules: the context
    from "a photo of a", SGD (momentum 0.9, weight decay 5e-4, cosine), batches of 32 drawn from
    a generator seeded with ``seed`` (as the learner does). Returns the step losses."""
    import torch.nn.functional as F
    from open_clip.transformer import text_global_pool

    model, batch = encoder.model, 32
    tokens = encoder.tokenizer([f"a photo of a {n}." for n in names])
    features = F.normalize(features.float(), dim=-1)
    with torch.no_grad():
        base = model.token_embedding(tokens).float()
    ctx = torch.nn.Parameter(base[:1, 1:5].clone())  # "a photo of a": 4 tokens after <start>
    optimiser = torch.optim.SGD([ctx], lr=2e-3, momentum=0.9, weight_decay=5e-4)
    schedule, generator, losses = _cosine(optimiser, steps), torch.Generator().manual_seed(seed), []
    for p in model.parameters():
        p.requires_grad_(False)
    while len(losses) < steps:
        order = _order(len(labels), batch, generator)
        for start in range(0, len(labels), batch):
            if len(losses) == steps:
                break
            index = order[start : start + batch]
            x = torch.cat([base[:, :1], ctx.expand(len(names), -1, -1), base[:, 5:]], 1)
            x = model.ln_final(model.transformer(x + model.positional_embedding, attn_mask=model.attn_mask))
            text = F.normalize(text_global_pool(x, tokens, "argmax") @ model.text_projection, dim=-1)
            loss = F.cross_entropy(encoder.logit_scale * features[index] @ text.T, labels[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
    for p in model.parameters():
        p.requires_grad_(True)
    return losses


def lora_plain(encoder, names, images, labels, steps: int, seed: int = 0) -> list[float]:
    """CLIP-LoRA's training written out by hand over the same frozen towers and the same LoRA
    modules (rank 2, alpha 1, dropout 0.25 on q, k, v of both towers): AdamW (lr 2e-4, weight
    decay 1e-2, cosine to 1e-6), batches of 32 from a generator seeded with ``seed``, the
    adapters' initialisation and dropout from torch's stream seeded with ``seed``."""
    import torch.nn.functional as F

    from fewshot.learners.lora_attention import adapters_for, attached, attention_layers

    model, batch = encoder.model, 32
    tokens = encoder.tokenizer([f"a photo of a {n}." for n in names])
    for p in model.parameters():
        p.requires_grad_(False)
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapters = adapters_for(attention_layers(model, ("visual.", "transformer.")), 2, 1.0, 0.25, "qkv")
        optimiser = torch.optim.AdamW(adapters.parameters(), lr=2e-4, weight_decay=1e-2)
        schedule, generator = _cosine(optimiser, steps, 1e-6), torch.Generator().manual_seed(seed)
        model.train()
        adapters.train()
        with attached(model, adapters):
            while len(losses) < steps:
                order = _order(len(labels), batch, generator)
                for start in range(0, len(labels), batch):
                    if len(losses) == steps:
                        break
                    index = order[start : start + batch]
                    image = F.normalize(model.encode_image(images[index]), dim=-1)
                    text = F.normalize(model.encode_text(tokens), dim=-1)
                    loss = F.cross_entropy(encoder.logit_scale * image @ text.T, labels[index])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    schedule.step()
                    losses.append(float(loss.detach()))
        model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return losses


def _timed(fn) -> tuple[float, list[float]]:
    start = time.perf_counter()
    losses = fn()
    return time.perf_counter() - start, losses


def _timing_task(args):
    """The micro-CLIP (or ``--clip-model``), and a 5-way 4-shot support set of the data folder."""
    from fewshot.build import build_encoder, load_for_encoder

    options = {"model": args.clip_model or "micro-clip", "pretrained": args.pretrained, "precision": "fp32"}
    source = build_encoder("clip", torch.device("cpu"), options, seed=0)
    data = load_for_encoder(source, str(data_folder(args)), "all", None, None, 0)
    ways, shots = 5, 4
    index = torch.cat([torch.nonzero(data.labels == c)[:shots, 0] for c in range(ways)])
    return (
        source.encoder,
        data.data[index],
        torch.arange(ways).repeat_interleave(shots),
        data.class_names[:ways],
    )


def timing(args) -> dict:
    """Steps/s of the learners' own training against `coop_plain` / `lora_plain` (same steps,
    same seeds: the losses must agree, or the two loops did not do the same work)."""
    from fewshot.build import build_learner

    encoder, images, labels, names = _timing_task(args)
    steps, shots = args.timing_steps, 4
    features = encoder.encode_batched(images, None)
    coop = build_learner("coop", encoder, {"epochs": steps})
    lora = build_learner("clip-lora", encoder, {"iterations_per_shot": steps // shots})
    for learner in (coop, lora):
        learner.set_class_names(names)

    runs = {  # CoOp trains on the cached image embeddings, CLIP-LoRA through both towers
        "coop": lambda: coop.fit_embeddings(features, labels).losses_,
        "coop-plain": lambda: coop_plain(encoder, names, features, labels, steps),
        "clip-lora": lambda: lora.fit(images, labels).losses_,
        "clip-lora-plain": lambda: lora_plain(encoder, names, images, labels, steps),
    }
    times, losses = {name: [] for name in runs}, {}
    for name, fn in runs.items():  # warm-up outside the clock; its losses are the check
        losses[name] = fn()
    for _ in range(args.rounds):  # interleaved, so a change in load hits every loop alike
        for name, fn in runs.items():
            times[name].append(_timed(fn)[0])
    return _timing_result(times, losses, steps, args.rounds)


def _timing_result(times: dict, losses: dict, steps: int, rounds: int) -> dict:
    rate = {name: steps / float(np.median(t)) for name, t in times.items()}
    same = {
        m: len(losses[m]) == len(losses[f"{m}-plain"]) == steps
        and bool(np.allclose(losses[m], losses[f"{m}-plain"], rtol=1e-4, atol=1e-5))
        for m in ("coop", "clip-lora")
    }
    result = {"steps": steps, "rounds": rounds, "steps_per_s": rate, "seconds": times, "same_losses": same}
    for m in ("coop", "clip-lora"):
        result[f"{m}_ratio"] = rate[m] / rate[f"{m}-plain"]
        print(
            f"{m}: {rate[m]:.1f} steps/s vs plain PyTorch {rate[f'{m}-plain']:.1f}: "
            f"{result[f'{m}_ratio']:.2f}x (goal >= 0.9x); same losses as the plain loop: {same[m]}",
            flush=True,
        )
    return result


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shots", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2, 4, 8, 16])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--episodes", type=int, default=50, help="episodes per shots and seed")
    p.add_argument("--lora-episodes", type=int, default=2, help="CLIP-LoRA's episodes per shots and seed")
    p.add_argument("--lora-iterations-per-shot", type=int, default=None, help="default: CLIP-LoRA's 500")
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--per-class", type=int, default=40, help="shapes folder: images per class")
    p.add_argument("--methods", type=lambda s: s.split(","), default=None)
    p.add_argument("--clip-model", default=None, help="any open_clip name (with --pretrained TAG)")
    p.add_argument("--pretrained", default="default")
    p.add_argument("--dataset", choices=["shapes", "fashion-mnist"], default="shapes")
    p.add_argument("--folder", type=Path, default=None, help="a labelled image folder instead of --dataset")
    p.add_argument("--no-efficientnet", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--replot", action="store_true", help="tables and PNGs of --out (no new run)")
    p.add_argument("--timing", action="store_true")
    p.add_argument("--timing-steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("benchmarks/clip-adapters.json"))
    args = p.parse_args(argv)
    if min(args.shots) < 1 or args.seeds < 1 or args.episodes < 1 or args.out.suffix != ".json":
        p.error("--shots, --seeds and --episodes must be positive and --out a .json file")
    return args


def main(argv=None) -> None:
    from fewshot.errors import FewshotError

    try:
        run(parse(argv))
    except FewshotError as err:  # offline, unknown model or tag, bad folder: one line
        sys.exit(f"error: {err}")


def replot(path: Path) -> None:
    """The tables and PNGs of a result file (a partial one too), without running anything."""
    import json

    result = json.loads(path.read_text())
    settings, rows = result["settings"], result["rows"]
    shots, ways = settings["shots"], settings["ways"]
    for label in dict.fromkeys(r["source"] for r in rows if "source" in r):
        mine = [r for r in rows if r.get("source") == label]
        print(f"\n{label}{' (partial)' if result.get('partial') else ''}\n\n{table(mine, shots)}")
        title = f"{label}: {ways}-way, {settings['seeds']} seeds x {settings['episodes']} episodes"
        plot(
            mine,
            path.with_name(f"{path.stem}-{label.replace('/', '-')}.png"),
            title,
            ways,
            settings["queries"],
        )


def run(args: argparse.Namespace) -> None:
    if args.replot:
        replot(args.out)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    print(machine_line(info), flush=True)
    if args.timing:
        write_json(args.out, {"machine": info, "timing": timing(args)})
        return
    folder = data_folder(args)
    rows, started = [], time.perf_counter()
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}

    def save(more: list[dict], partial: bool = True) -> None:
        seconds = time.perf_counter() - started
        result = {"machine": info, "settings": settings, "rows": rows + more, "seconds": seconds}
        write_json(args.out, {**result, "partial": partial})

    for label, encoder, options, methods in sources(args):
        mine = run_source(label, encoder, options, methods, args, folder, save)
        rows += [{**r, "source": label} for r in mine]
        print(f"\n{label} on {folder.name}, {args.ways}-way, {args.queries} queries/class\n")
        print(table(mine, args.shots))
        title = f"{label} on {folder.name}: {args.ways}-way, {args.seeds} seeds x {args.episodes} episodes"
        plot(
            mine,
            args.out.with_name(f"{args.out.stem}-{label.replace('/', '-')}.png"),
            title,
            args.ways,
            args.queries,
        )
    save([], partial=False)


if __name__ == "__main__":
    main()
