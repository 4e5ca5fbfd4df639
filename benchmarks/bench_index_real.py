"""Index recall and speed on REAL embeddings, fewshot's `VectorIndex` against raw FAISS.

Embeddings (cached under ``$FEWSHOT_BENCH_DIR``, default ``~/.cache/fewshot/bench``, so a rerun
only searches): EfficientNet-Lite0 features of Fashion-MNIST (all 70,000 at 224 px take ~35 min
on a 2-core CPU: ``--fashion-limit`` and ``--image-size`` make a smaller run) and the shipped
Conv-4 features of every Omniglot image. Per setting (HNSW32 with several efSearch, IVF with
several nprobe): recall@10 against exact search (Flat), and queries/s of fewshot's search and
of the same FAISS index searched directly, in the same process, interleaved.

    python benchmarks/bench_index_real.py                        # everything, cached
    python benchmarks/bench_index_real.py --fashion-limit 5000 --image-size 96 --queries 500
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _common as common  # noqa: E402

BENCH_DIR = Path(os.environ.get("FEWSHOT_BENCH_DIR", Path.home() / ".cache" / "fewshot" / "bench"))


def embeddings(name: str, args) -> np.ndarray:
    """``(n, d)`` float32 features of one source, computed once and cached."""
    from fewshot.build import build_encoder, load_for_encoder

    tag = f"{name}-{args.fashion_limit}-{args.image_size}" if name == "fashion" else name
    cache = BENCH_DIR / f"index-real-{tag}.npy"
    if cache.exists():
        return np.load(cache)
    if name == "fashion":
        source = build_encoder("efficientnet-lite0", "cpu", {"image_size": args.image_size}, seed=0)
        data = load_for_encoder(source, "fashion-mnist", "all", "official", args.data_dir, 0)
        data = common.limit_test(data, args.fashion_limit, 0)
    else:
        from fewshot.models import DEFAULT_CHECKPOINT

        source = build_encoder(str(DEFAULT_CHECKPOINT), "cpu")
        parts = [load_for_encoder(source, "omniglot", s, "lake", args.data_dir, 0) for s in ("train", "test")]
        data = type("All", (), {"data": __import__("torch").cat([p.data for p in parts])})
    vectors = source.encoder.encode_batched(data.data, progress=True).numpy().astype(np.float32)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def timed(search, reps: int) -> float:
    best = []
    for _ in range(reps):
        start = time.perf_counter()
        search()
        best.append(time.perf_counter() - start)
    return float(np.median(best))


def settings(n: int) -> list[tuple[str, str, dict]]:
    lists = max(16, int(4 * np.sqrt(n)) // 16 * 16)
    rows = [("HNSW32", "efSearch", {"efSearch": e}) for e in (16, 64, 256)]
    return rows + [(f"IVF{lists},Flat", "nprobe", {"nprobe": p}) for p in (1, 8, 32)]


def run(name: str, vectors: np.ndarray, args) -> list[list]:
    import faiss

    from fewshot.index.core import VectorIndex

    rng = np.random.default_rng(0)
    queries = vectors[rng.choice(len(vectors), size=min(args.queries, len(vectors)), replace=False)]
    exact = VectorIndex(vectors.shape[1], "cosine", "Flat", device="cpu").add(vectors)
    truth = exact.search(queries, k=11).labels[:, 1:]  # the query itself is its first hit
    rows, built = [], {}
    for factory, knob, params in settings(len(vectors)):
        if factory not in built:
            start = time.perf_counter()
            built[factory] = VectorIndex(vectors.shape[1], "cosine", factory, device="cpu").add(vectors)
            built[factory].build_s = time.perf_counter() - start
        index = built[factory]
        index.set_search_params(**params)
        got = index.search(queries, k=11).labels[:, 1:]
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)])
        unit = np.ascontiguousarray(queries, dtype=np.float32)
        faiss.normalize_L2(unit)
        ours = timed(lambda: index.search(queries, k=10), args.reps)  # noqa: B023
        raw = timed(lambda: index.faiss_index.search(unit, 10), args.reps)  # noqa: B023
        setting = f"{knob}={list(params.values())[0]}"
        speeds = [round(len(queries) / ours), round(len(queries) / raw)]
        rows.append([name, factory, setting, round(recall, 4), *speeds, round(index.build_s, 1)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="+", default=["fashion", "omniglot"])
    parser.add_argument("--fashion-limit", type=int, default=None, help="stratified subset (None: 70,000)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--data-dir", default=os.environ.get("FEWSHOT_DATA_DIR"))
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    rows = []
    for name in args.sources:
        vectors = embeddings(name, args)
        print(f"{name}: {vectors.shape[0]} x {vectors.shape[1]} embeddings", file=sys.stderr)
        rows += run(name, vectors, args)
    headers = ["embeddings", "factory", "setting", "recall@10", "fewshot q/s", "raw FAISS q/s", "build s"]
    print(common.machine_line(common.machine()))
    print(common.markdown_table(headers, rows))
    if args.out:
        common.write_json(args.out, {"machine": common.machine(), "headers": headers, "rows": rows})


if __name__ == "__main__":
    main()
