"""Ray Data embedding throughput against the single-process `fewshot embed`, and its scaling.

Writes N JPEG images (Omniglot-sized greyscale strokes, or --size), then embeds them with
`fewshot.scale.embed.embed_items` in fresh processes: the ``local`` engine (a DataLoader with
decode workers) and the ``ray`` engine (decode tasks -> model actors) with Ray started on C
CPUs and A actors. Each configuration runs --repeats times, interleaved; the table gives the
median images/s and the Ray / local ratio (goal: overhead <= 10% at 2 CPUs, ratio >= 0.9).
The embeddings of every run are checked against the local engine's (max abs difference).

    python benchmarks/bench_ray_embed.py --images 20000               # the issue's run
    python benchmarks/bench_ray_embed.py --images 2000 --cpus 1 2 --actors 1 2 --repeats 1

Timings need a quiet machine; on a shared one they say nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, machine_line, markdown_table, write_table  # noqa: E402


def write_images(folder: Path, count: int, size: int) -> None:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for i in range(count):
        d = folder / f"c{i % 50:02d}"
        d.mkdir(parents=True, exist_ok=True)
        image = Image.new("L", (size, size), 255)
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            draw.line([tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(3)], fill=0, width=3)
        image.save(d / f"{i:06d}.jpg", quality=90)


def one(args) -> dict:
    """One embedding run in this process; its images/s."""
    from fewshot.scale.embed import EncoderSpec, embed_items
    from fewshot.scale.sources import read_source

    if args.engine == "ray":
        import ray

        ray.init(num_cpus=args.one_cpus, include_dashboard=False, log_to_driver=False)
    items = read_source([args.folder])
    spec = EncoderSpec(args.encoder)
    start = time.perf_counter()
    summary = embed_items(
        items, args.out_dir, spec, engine=args.engine, shard_size=args.shard_size, batch_size=args.batch_size,
        workers=args.one_cpus if args.engine == "local" else None,
        actors=args.one_actors if args.engine == "ray" else None, restart=True, progress=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images_per_second": summary.embedded / seconds, "embedded": summary.embedded}


def _vectors(folder: Path) -> np.ndarray:
    from fewshot.scale.shards import finished_shards, iter_embeddings

    return np.concatenate(
        [v for p, _ in finished_shards(folder) for v, _, _ in iter_embeddings(p, with_items=False)]
    )


def _child(args, engine: str, cpus: int, actors: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--one", engine, "--one-cpus", str(cpus), "--one-actors", str(actors)]
    cmd += ["--folder", str(args.folder), "--out-dir", str(out), "--shard-size", str(args.shard_size)]
    cmd += ["--batch-size", str(args.batch_size)] + (["--encoder", args.encoder] if args.encoder else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=105, help="image side (Omniglot: 105)")
    parser.add_argument("--encoder", default=None, help="encoder (default: the shipped Conv-4)")
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2], help="CPUs (local: decode workers)")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    parser.add_argument("--one", default=None, dest="engine", help=argparse.SUPPRESS)
    parser.add_argument("--one-cpus", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--one-actors", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(one(args)))
        return
    configs = [("local", c, 0) for c in args.cpus]
    configs += [("ray", c, a) for c in args.cpus for a in args.actors if a <= c]
    with tempfile.TemporaryDirectory() as tmp:
        args.folder = Path(tmp) / "images"
        write_images(args.folder, args.images, args.size)
        rates: dict = {c: [] for c in configs}
        outs = {c: Path(tmp) / f"{c[0]}-{c[1]}-{c[2]}" for c in configs}
        for _ in range(args.repeats):  # interleaved rounds: background load hits all alike
            for config in configs:
                rates[config].append(_child(args, *config, outs[config])["images_per_second"])
        reference = _vectors(outs[configs[0]])
        local = {c: statistics.median(rates[("local", c, 0)]) for c in args.cpus}
        rows = []
        for config in configs:
            engine, cpus, actors = config
            median = statistics.median(rates[config])
            diff = float(np.abs(_vectors(outs[config]) - reference).max())
            ratio = round(median / local[cpus], 3)
            rows.append([engine, cpus, actors or "-", round(median, 1), ratio, f"{diff:.1e}"])
    header = ["engine", "CPUs", "actors", "images/s (median)", "vs local at same CPUs", "max |e - e_local|"]
    print(machine_line(machine()))
    encoder = args.encoder or "shipped Conv-4"
    print(f"{args.images} JPEGs {args.size}x{args.size}, encoder {encoder}, {args.repeats} rounds")
    print(markdown_table(header, rows))
    if args.out:
        write_table(args.out, args, header, rows)


if __name__ == "__main__":
    main()
