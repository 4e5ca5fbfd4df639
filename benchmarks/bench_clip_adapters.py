"""Issue #19: the few-shot CLIP toolbox on the same episodes, no validation set.

Every method at 1/2/4/8/16 shots, ``--seeds`` episode seeds (one episode file per shots and
seed, shared by every method), accuracy with the 95% CI over all episodes, the spread over
seeds, and the time per episode (fit + scoring; the data are embedded once per encoder,
outside the clock). Sources:

- ``micro-clip`` on its synthetic shapes folder (drawn here: ``--per-class`` images of each of
  the 24 classes, seed 1000, never the micro-CLIP's training seeds).
- ``efficientnet-lite0`` image features of the same folder: only the methods that need no text
  (linear probe, SimpleShot); the text methods are listed as "needs a text tower".
- ``--clip-model NAME --pretrained TAG`` (any open_clip name/tag, for users with weights) on
  ``--folder`` (a labelled image folder) or the shapes folder.

``--timing`` instead measures CoOp's and CLIP-LoRA's training steps/s against a plain PyTorch
loop over the same frozen modules (interleaved rounds, median; run it on a quiet machine).

    nice -n 10 python benchmarks/bench_clip_adapters.py --episodes 10 --out /tmp/clip.json
    python benchmarks/bench_clip_adapters.py --timing --out /tmp/clip-timing.json
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

CLIP_METHODS = [
    "zeroshot", "tip-adapter", "tip-adapter-f", "linear-probe", "coop", "cocoop",
    "clip-adapter", "zs-lp", "clap", "lp++", "clip-lora",
]  # fmt: skip
IMAGE_ONLY = ["linear-probe", "simpleshot"]
CACHE = Path("~/.cache/fewshot/bench/clip-adapters").expanduser()


def shapes_folder(per_class: int) -> Path:
    from fewshot.tools.shapes import make_folder

    folder = CACHE / f"shapes-{per_class}"
    if not (folder / "red circle").is_dir():
        make_folder(folder, per_class=per_class, seed=1000)
    return folder


def sources(args) -> list[tuple[str, str, dict, list[str]]]:
    """``(label, encoder, options, methods)`` of every source to run."""
    chosen = []
    if args.clip_model:
        chosen.append(
            (
                f"{args.clip_model}/{args.pretrained}",
                "clip",
                {"model": args.clip_model, "pretrained": args.pretrained},
                CLIP_METHODS,
            )
        )
    else:
        chosen.append(("micro-clip", "clip", {"model": "micro-clip"}, CLIP_METHODS))
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


def run_method(name, source, data, files, embeddings, args) -> list[dict]:
    from fewshot.build import build_learner
    from fewshot.evaluation import confidence_interval_95, evaluate
    from fewshot.sampling import EpisodeFile

    learner = build_learner(name, source.encoder, options_for(name, args))
    cached = embeddings if learner.kind == "embedding" else None
    rows = []
    for k in args.shots:
        accuracies, seconds, per_seed = [], 0.0, []
        for seed in range(args.seeds):
            sampler = EpisodeFile(files[(k, seed)], data.labels)
            if name == "clip-lora" and args.lora_episodes < len(sampler):
                from fewshot.sampling import EpisodeSampler

                sampler = EpisodeSampler(
                    data.labels, args.ways, k, args.queries, episodes=args.lora_episodes, seed=seed
                )
            result = evaluate(learner, data, sampler=sampler, device="cpu", progress=False, embeddings=cached)
            accuracies += result.per_episode
            seconds += result.seconds
            per_seed.append(result.mean)
        rows.append({
            "method": name, "shots": k, "mean": float(np.mean(accuracies)),
            "ci95": confidence_interval_95(accuracies), "seed_std": float(np.std(per_seed)),
            "episodes": len(accuracies), "seconds_per_episode": seconds / len(accuracies),
        })  # fmt: skip
        print(f"  {name:14s} {k:2d}-shot {100 * rows[-1]['mean']:6.2f} +- {100 * rows[-1]['ci95']:.2f}"
              f"  {rows[-1]['seconds_per_episode']:.3f} s/episode", flush=True)  # fmt: skip
    return rows


def run_source(label, encoder, options, methods, args, folder) -> list[dict]:
    from fewshot.build import build_encoder, load_for_encoder

    source = build_encoder(encoder, torch.device("cpu"), options, seed=0)
    data = load_for_encoder(source, str(folder), "all", None, None, 0)
    files = episode_files(data.labels, args, CACHE / "episodes")
    embeddings = source.encoder.encode_batched(data.data, None)
    rows = []
    print(f"{label}: {len(data.labels)} images, {len(data.class_names)} classes", flush=True)
    for name in args.methods or methods:
        if name not in methods:
            rows += [
                {"method": name, "shots": k, "mean": None, "note": "needs a text tower"} for k in args.shots
            ]
            continue
        rows += [{**row, "source": label} for row in run_method(name, source, data, files, embeddings, args)]
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


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def coop_plain(encoder, names, features, labels, steps: int) -> None:
    """CoOp's step written out by hand: open_clip's text modules, SGD on the context."""
    import torch.nn.functional as F
    from open_clip.transformer import text_global_pool

    model = encoder.model
    tokens = encoder.tokenizer([f"a photo of a {n}." for n in names])
    with torch.no_grad():
        base = model.token_embedding(tokens).float()
    ctx = torch.nn.Parameter(base[:1, 1:5].clone())
    optimiser = torch.optim.SGD([ctx], lr=2e-3, momentum=0.9, weight_decay=5e-4)
    for p in model.parameters():
        p.requires_grad_(False)
    for _ in range(steps):
        x = (
            torch.cat([base[:, :1], ctx.expand(len(names), -1, -1), base[:, 5:]], 1)
            + model.positional_embedding
        )
        x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
        text = F.normalize(text_global_pool(x, tokens, "argmax") @ model.text_projection, dim=-1)
        loss = F.cross_entropy(encoder.logit_scale * features @ text.T, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    for p in model.parameters():
        p.requires_grad_(True)


def lora_plain(encoder, names, images, labels, steps: int) -> None:
    """CLIP-LoRA's step written out by hand over the same adapters (AdamW, batches of 32)."""
    import torch.nn.functional as F

    from fewshot.learners.lora_attention import adapters_for, attached, attention_layers

    model = encoder.model
    adapters = adapters_for(attention_layers(model, ("visual.", "transformer.")), 2, 1.0, 0.25, "qkv")
    optimiser = torch.optim.AdamW(adapters.parameters(), lr=2e-4, weight_decay=1e-2)
    tokens = encoder.tokenizer([f"a photo of a {n}." for n in names])
    for p in model.parameters():
        p.requires_grad_(False)
    with attached(model, adapters):
        for _ in range(steps):
            index = torch.randint(0, images.shape[0], (min(32, images.shape[0]),))
            image = F.normalize(model.encode_image(images[index]), dim=-1)
            text = F.normalize(model.encode_text(tokens), dim=-1)
            loss = F.cross_entropy(encoder.logit_scale * image @ text.T, labels[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    for p in model.parameters():
        p.requires_grad_(True)


def timing(args) -> dict:
    from fewshot.build import build_encoder, build_learner, load_for_encoder

    source = build_encoder(
        "clip",
        torch.device("cpu"),
        {"model": args.clip_model or "micro-clip", "pretrained": args.pretrained},
        seed=0,
    )
    data = load_for_encoder(source, str(args.folder or shapes_folder(args.per_class)), "all", None, None, 0)
    ways, shots, steps = 5, 4, args.timing_steps
    index = torch.cat([torch.nonzero(data.labels == c)[:shots, 0] for c in range(ways)])
    images, labels = data.data[index], torch.arange(ways).repeat_interleave(shots)
    names = data.class_names[:ways]
    features = source.encoder.encode_batched(images, None)
    coop = build_learner("coop", source.encoder, {"epochs": steps})
    lora = build_learner("clip-lora", source.encoder, {"iterations_per_shot": steps // shots})
    for learner in (coop, lora):
        learner.set_class_names(names)
    runs = {
        "coop": lambda: coop.fit_embeddings(features, labels),
        "coop-plain": lambda: coop_plain(source.encoder, names, features, labels, steps),
        "clip-lora": lambda: lora.fit(images, labels),
        "clip-lora-plain": lambda: lora_plain(source.encoder, names, images, labels, steps),
    }
    times = {name: [] for name in runs}
    for fn in runs.values():  # warm-up outside the clock
        fn()
    for _ in range(args.rounds):
        for name, fn in runs.items():
            times[name].append(_timed(fn))
    rate = {name: steps / float(np.median(t)) for name, t in times.items()}
    result = {
        "steps": steps, "rounds": args.rounds, "steps_per_s": rate,
        "coop_ratio": rate["coop"] / rate["coop-plain"],
        "lora_ratio": rate["clip-lora"] / rate["clip-lora-plain"],
    }  # fmt: skip
    print(f"CoOp {rate['coop']:.1f} steps/s vs plain {rate['coop-plain']:.1f}: {result['coop_ratio']:.2f}x")
    lora, plain = rate["clip-lora"], rate["clip-lora-plain"]
    print(f"CLIP-LoRA {lora:.1f} steps/s vs plain {plain:.1f}: {result['lora_ratio']:.2f}x")
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
    p.add_argument("--folder", type=Path, default=None, help="a labelled image folder (default: shapes)")
    p.add_argument("--no-efficientnet", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--timing", action="store_true")
    p.add_argument("--timing-steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("benchmarks/clip-adapters.json"))
    args = p.parse_args(argv)
    if min(args.shots) < 1 or args.seeds < 1 or args.episodes < 1 or args.out.suffix != ".json":
        p.error("--shots, --seeds and --episodes must be positive and --out a .json file")
    return args


def main(argv=None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    print(machine_line(info), flush=True)
    if args.timing:
        write_json(args.out, {"machine": info, "timing": timing(args)})
        return
    folder = args.folder or shapes_folder(args.per_class)
    rows, started = [], time.perf_counter()
    for label, encoder, options, methods in sources(args):
        mine = run_source(label, encoder, options, methods, args, folder)
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
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_json(
        args.out,
        {"machine": info, "settings": settings, "rows": rows, "seconds": time.perf_counter() - started},
    )


if __name__ == "__main__":
    main()
