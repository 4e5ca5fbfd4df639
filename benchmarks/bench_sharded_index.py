"""Sharded vs single index build from an embedding folder: identical neighbours, build time, peak memory.

Writes a folder of Parquet shards as `fewshot embed` does (clustered float32 vectors), then, each
in a fresh process so that peak memory (``ru_maxrss``) is the build's own:

- ``single``: every vector loaded at once into one `VectorIndex` of the factory (trained on the
  same seeded sample as the sharded build), then searched;
- ``sharded``: `fewshot.scale.sharded_index.build_sharded` with N shard groups (each added on
  its own, never all vectors in memory), merged on disk or served as ``IndexShards``, searched.

It reports whether the k neighbours (ids and scores) of every query are identical to the
single build's, the build seconds and the peak RSS of each.

    python benchmarks/bench_sharded_index.py                       # 200,000 x 128, IVF1024,Flat
    python benchmarks/bench_sharded_index.py --rows 1000000 --shards 1 4 16 --out bench.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown_table, write_table  # noqa: E402


def write_folder(folder: Path, rows: int, dim: int, shard_rows: int, seed: int = 0) -> None:
    """Clustered vectors in shards of `shard_rows`, written one shard at a time."""
    from fewshot.scale.shards import manifest_document, plan_shards, write_shard

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(256, dim)).astype(np.float32) * 3
    plans = plan_shards(rows, shard_rows)
    done = {}
    for plan in plans:
        labels = rng.integers(0, len(centres), plan.rows)
        vectors = centres[labels] + rng.normal(size=(plan.rows, dim)).astype(np.float32)
        items = range(plan.start, plan.start + plan.rows)
        shard = [
            {"id": f"{i:08d}", "path": f"/data/{i:08d}.jpg", "embedding": v, "error": None, "metadata": None}
            for i, v in zip(items, vectors, strict=True)
        ]
        done[plan.number] = write_shard(folder, plan, shard, dim)
    settings = {"dim": dim, "encoder": {"index_record": None}}
    (folder / "embed.json").write_bytes(manifest_document(settings, plans, done, "done"))


def queries_of(folder: Path, count: int) -> np.ndarray:
    from fewshot.scale.shards import finished_shards, iter_embeddings

    vectors, _, _ = next(iter_embeddings(finished_shards(folder)[0][0], with_items=False))
    return vectors[:count]


def one(args) -> dict:
    """One build in this process: its seconds, peak RSS and the neighbours of the queries."""
    from fewshot.index import EmbeddingIndex
    from fewshot.index.core import VectorIndex
    from fewshot.scale.sharded_index import build_sharded, load_sharded, trained_index
    from fewshot.scale.shards import finished_shards, iter_embeddings

    folder, out = Path(args.folder), Path(args.index)
    queries = queries_of(folder, args.queries)
    start = time.perf_counter()
    if args.one == "single":
        files = [(p, n) for p, n in finished_shards(folder) if n]
        ids, vectors = [], []
        for path, _ in files:
            for batch, batch_ids, _ in iter_embeddings(path):
                ids += batch_ids
                vectors.append(batch)
        index = VectorIndex(vectors[0].shape[1], "cosine", args.factory, device="cpu")
        index._index = trained_index(files, args.factory, "cosine", vectors[0].shape[1], args.train_size, 0)
        index.add(np.concatenate(vectors), ids)
    else:
        build_sharded(folder, out, factory=args.factory, shards=args.shards[0], layout=args.layout,
                      train_size=args.train_size)  # fmt: skip
        index = EmbeddingIndex.load(out, device="cpu") if args.layout == "ondisk" else load_sharded(out)
    seconds = time.perf_counter() - start
    found = index.search(queries, k=args.k, nprobe=args.nprobe)
    np.save(out.with_suffix(".ids.npy"), np.asarray(found.ids, dtype=object), allow_pickle=True)
    np.save(out.with_suffix(".scores.npy"), np.asarray(found.scores))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1)}


def _child(args, kind: str, shards: int, layout: str, index: Path) -> dict:
    cmd = [sys.executable, __file__, "--one", kind, "--folder", str(args.folder), "--index", str(index)]
    cmd += ["--factory", args.factory, "--shards", str(shards), "--layout", layout, "--k", str(args.k)]
    cmd += ["--nprobe", str(args.nprobe), "--queries", str(args.queries)]
    cmd += ["--train-size", str(args.train_size)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{kind} build failed:\n{done.stderr[-2000:]}")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def _same(a: Path, b: Path) -> bool:
    ids = [np.load(p.with_suffix(".ids.npy"), allow_pickle=True) for p in (a, b)]  # our own files
    scores = [np.load(p.with_suffix(".scores.npy")) for p in (a, b)]
    return bool((ids[0] == ids[1]).all() and np.array_equal(scores[0], scores[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--shard-rows", type=int, default=20_000, help="rows per Parquet shard")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 4, 8], help="shard groups")
    parser.add_argument("--layouts", nargs="+", default=["ondisk", "shards"])
    parser.add_argument("--factory", default="IVF1024,Flat")
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--index", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--layout", default="ondisk", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        args.folder = Path(tmp) / "emb"
        args.folder.mkdir()
        write_folder(args.folder, args.rows, args.dim, args.shard_rows)
        single = Path(tmp) / "single"
        base = _child(args, "single", 1, "ondisk", single)
        rows.append(["single (all in memory)", "-", "-", base["seconds"], base["peak_rss_mb"], "reference"])
        for layout in args.layouts:
            for shards in args.shards:
                index = Path(tmp) / f"{layout}-{shards}"
                got = _child(args, "sharded", shards, layout, index)
                same = "identical" if _same(index, single) else "DIFFERENT"
                rows.append(
                    [f"sharded {layout}", shards, args.shard_rows, got["seconds"], got["peak_rss_mb"], same]
                )
    header = ["build", "shard groups", "rows/shard", "build s", "peak RSS MB", f"top-{args.k} vs single"]
    print(f"{args.rows} x {args.dim} float32, {args.factory}, nprobe {args.nprobe}, {args.queries} queries")
    print(markdown_table(header, rows))
    if args.out:
        write_table(args.out, args, header, rows)


if __name__ == "__main__":
    main()
