"""Embedding index benchmark: EmbeddingIndex vs raw FAISS calls vs scikit-learn brute force.

On N random 512-d vectors (cosine), for Flat, HNSW32 and IVF<sqrt N>,Flat: build time,
queries per second and recall@10 against exact (Flat) results, for the wrapper and for the
same FAISS calls made directly, side by side in one run; plus scikit-learn's brute-force
``NearestNeighbors`` (cosine). Raw and wrapper timings alternate and the best of
``--repeats`` is kept, so load from other processes hits both alike.

The wrapper's search overhead is measured on the very FAISS object it owns (``faiss_index``),
called directly with normalised queries: same index, same data, same queries. Its build
overhead is measured by building both from scratch (HNSW on a smaller subset: its build is slow).

    python benchmarks/bench_index.py --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

import numpy as np


def best_of(repeats: int, *fns):
    """Run the callables in turn `repeats` times; the best seconds and last result of each."""
    best = [math.inf] * len(fns)
    results = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            results[i] = fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best, results


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    from fewshot.index import recall_at_k

    return recall_at_k(found, truth)


def raw_build(faiss, data: np.ndarray, factory: str):
    """What a user of FAISS writes by hand for cosine search: normalise, build, train, add."""
    x = data.copy()
    faiss.normalize_L2(x)
    index = faiss.index_factory(x.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(x)
    index.add(x)
    return index


def raw_search(faiss, index, queries: np.ndarray, k: int):
    q = queries.copy()
    faiss.normalize_L2(q)
    return index.search(q, k)


def wrapper_build(data: np.ndarray, factory: str):
    from fewshot.index import EmbeddingIndex

    return EmbeddingIndex(data.shape[1], "cosine", factory, device="cpu").add(data)


def run_size(n: int, args, faiss) -> list[dict]:
    rng = np.random.default_rng(n)
    dim, k = args.dim, args.k
    nq = args.queries if n <= 200_000 else args.queries_large
    data = rng.standard_normal((n, dim), dtype=np.float32)
    queries = rng.standard_normal((nq, dim), dtype=np.float32)
    rows: list[dict] = []
    nlist = int(round(math.sqrt(n)))
    factories = [
        ("Flat", None, [None]),
        ("HNSW32", "efSearch", args.ef_search),
        (f"IVF{nlist},Flat", "nprobe", args.nprobe),
    ]
    kinds = set(args.factories) | {"Flat"}  # Flat gives the exact neighbours recall is measured against
    factories = [f for f in factories if f[0].split(",")[0].rstrip("0123456789") in kinds]
    truth = None
    for factory, knob, values in factories:
        if factory == "HNSW32" and n > args.hnsw_max:
            print(f"[{n}] {factory}: skipped (build too slow here; --hnsw-max {args.hnsw_max})", flush=True)
            rows.append({"n": n, "factory": factory, "skipped": True})
            continue
        raw_build_s = None
        if n <= args.compare_build_max and factory != "HNSW32":
            builds = args.repeats if factory == "Flat" else 1  # Flat builds are cheap: best of a few
            (raw_build_s, wrapper_build_s), (_, wrapper) = best_of(
                builds, lambda f=factory: raw_build(faiss, data, f), lambda f=factory: wrapper_build(data, f)
            )
        else:
            start = time.perf_counter()
            wrapper = wrapper_build(data, factory)
            wrapper_build_s = time.perf_counter() - start
        print(f"[{n}] {factory}: built in {wrapper_build_s:.1f} s (raw {raw_build_s})", flush=True)
        wrapper.search(queries[:1], k)  # warm-up: the id lookup table is built once per change
        for value in values:
            params = {knob: value} if knob else {}
            if knob:
                wrapper.set_search_params(**params)
            raw = wrapper.faiss_index
            (t_raw, t_wrap), (raw_out, wrap_out) = best_of(
                args.repeats,
                lambda raw=raw: raw_search(faiss, raw, queries, k),
                lambda wrapper=wrapper: wrapper.search(queries, k),
            )
            raw_labels = raw_out[1]
            if truth is None:
                truth = raw_labels  # Flat: exact
            row = {
                "n": n,
                "factory": factory,
                "knob": f"{knob}={value}" if knob else "",
                "queries": nq,
                "build_s": wrapper_build_s,
                "raw_build_s": raw_build_s,
                "qps": nq / t_wrap,
                "raw_qps": nq / t_raw,
                "search_overhead": t_wrap / t_raw - 1,
                "recall@10": recall(wrap_out.labels, truth),
                "same_as_raw": float(np.mean(wrap_out.labels == raw_labels)),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        del wrapper
    if args.hnsw_build_compare and n == min(args.sizes):
        sub = data[: args.hnsw_build_compare]
        (t_raw, t_wrap), _ = best_of(
            1, lambda: raw_build(faiss, sub, "HNSW32"), lambda: wrapper_build(sub, "HNSW32")
        )
        row = {
            "n": len(sub),
            "factory": "HNSW32",
            "build_only": True,
            "build_s": t_wrap,
            "raw_build_s": t_raw,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.no_sklearn:
        return rows
    # scikit-learn brute force, cosine, on a subset of the queries
    from sklearn.neighbors import NearestNeighbors

    nsk = min(nq, args.sklearn_queries if n <= 200_000 else args.sklearn_queries_large)
    start = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="cosine").fit(data)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    _, sk_labels = nn.kneighbors(queries[:nsk])
    search_s = time.perf_counter() - start
    row = {
        "n": n,
        "factory": "sklearn brute",
        "knob": "",
        "queries": nsk,
        "build_s": fit_s,
        "qps": nsk / search_s,
        "recall@10": recall(sk_labels, truth[:nsk]),
    }
    rows.append(row)
    print(json.dumps(row), flush=True)
    return rows


class _CachedSearch:
    """Stands in for a FAISS index: returns precomputed results instantly."""

    def __init__(self, out):
        self.out = out

    def search(self, x, k):
        return self.out[0].copy(), self.out[1].copy()


def fixed_overhead(n: int, nq: int, k: int, dim: int, repeats: int = 50) -> dict:
    """Seconds per search call the wrapper spends outside FAISS, and the raw path's own extra
    (query normalisation), with FAISS's search replaced by returning cached results: the
    difference is the wrapper's overhead, measured without the noise of the search itself."""
    import faiss

    from fewshot.index import EmbeddingIndex

    rng = np.random.default_rng(0)
    data = rng.standard_normal((n, dim), dtype=np.float32)
    queries = rng.standard_normal((nq, dim), dtype=np.float32)
    wrapper = EmbeddingIndex(dim, "cosine", "Flat", device="cpu").add(data)
    stub = _CachedSearch(raw_search(faiss, wrapper.faiss_index, queries, k))
    wrapper._search_index = lambda: stub  # the wrapper calls FAISS through this
    wrapper.search(queries, k)
    (t_raw, t_wrap), _ = best_of(
        repeats, lambda: raw_search(faiss, stub, queries, k), lambda: wrapper.search(queries, k)
    )
    return {
        "n": n,
        "queries": nq,
        "k": k,
        "raw_extra_s": t_raw,
        "wrapper_extra_s": t_wrap,
        "overhead_s": t_wrap - t_raw,
    }


def flat_build_overhead(n: int, dim: int, repeats: int = 5) -> dict:
    """Best-of-`repeats` Flat build, raw vs wrapper: the build is nearly all copying, so the
    difference is the wrapper's add overhead (validation, string ids, id map)."""
    import faiss

    data = np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)
    (t_raw, t_wrap), _ = best_of(
        repeats, lambda: raw_build(faiss, data, "Flat"), lambda: wrapper_build(data, "Flat")
    )
    return {"n": n, "flat_build_raw_s": t_raw, "flat_build_wrapper_s": t_wrap, "overhead_s": t_wrap - t_raw}


def table(rows: list[dict]) -> str:
    lines = [
        "| N | index | knob | build s (wrapper / raw) | queries/s (wrapper / raw) | search overhead "
        "| recall@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"| {r['n']:,} | {r['factory']} | | not run | | | |")
            continue
        if r.get("build_only"):
            build = f"{r['build_s']:.1f} / {r['raw_build_s']:.1f}"
            lines.append(f"| {r['n']:,} | {r['factory']} (build only) | | {build} | | | |")
            continue
        build = f"{r['build_s']:.1f}" + (
            f" / {r['raw_build_s']:.1f}" if r.get("raw_build_s") is not None else ""
        )
        qps = f"{r['qps']:,.0f}" + (f" / {r['raw_qps']:,.0f}" if "raw_qps" in r else "")
        over = f"{100 * r['search_overhead']:+.1f}%" if "search_overhead" in r else ""
        lines.append(
            f"| {r['n']:,} | {r['factory']} | {r['knob']} | {build} | {qps} | {over} | {r['recall@10']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=1000, help="queries for N <= 200k")
    parser.add_argument("--queries-large", type=int, default=200, help="queries for larger N")
    parser.add_argument("--sklearn-queries", type=int, default=1000)
    parser.add_argument("--sklearn-queries-large", type=int, default=100)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--hnsw-max", type=int, default=200_000, help="skip HNSW32 above this N")
    parser.add_argument(
        "--hnsw-build-compare", type=int, default=20_000, help="HNSW build wrapper vs raw on this many"
    )
    parser.add_argument(
        "--compare-build-max", type=int, default=200_000, help="raw-vs-wrapper builds up to this N"
    )
    parser.add_argument(
        "--factories",
        nargs="+",
        choices=["Flat", "HNSW", "IVF"],
        default=["Flat", "HNSW", "IVF"],
        help="index kinds to run (Flat always runs: it is the ground truth)",
    )
    parser.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn's brute force")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json-out", default=None)
    parser.add_argument(
        "--overhead-only", action="store_true", help="only the wrapper's time outside FAISS per search call"
    )
    args = parser.parse_args()

    import faiss
    import sklearn

    print(
        f"faiss {faiss.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
        f"threads {faiss.omp_get_max_threads()}, {platform.processor() or platform.machine()}",
        flush=True,
    )
    wrapper_build(np.zeros((1, args.dim), np.float32) + 1, "Flat")  # import the wrapper before timing
    if args.overhead_only:
        for n in args.sizes:
            for nq in (args.queries, args.queries_large):
                print(json.dumps(fixed_overhead(n, nq, args.k, args.dim)), flush=True)
            print(json.dumps(flat_build_overhead(n, args.dim, max(5, args.repeats))), flush=True)
        return
    rows = []
    for n in args.sizes:
        rows.extend(run_size(n, args, faiss))
    print(table(rows))
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
