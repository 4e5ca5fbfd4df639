"""How `fewshot review` copes with a large results file: open, page requests, decisions, reopen.

A synthetic `fewshot predict --top-k 2` CSV of ``--rows`` rows (20 labels; the images need not
exist: pages list rows, thumbnails are made only when an image is shown) is opened as a
review; then, through Starlette's TestClient (the real routes, no network), the median time
of page requests for several views (a label's gallery, the uncertain queue, sorted by
confidence and by margin, a page deep in the file), of single decisions (each fsync'd), of a
bulk accept, and of reopening the review (results read + journal replayed).

    python benchmarks/bench_review.py --rows 100000 --repeat 20 [--json out.json]

Timings depend on the machine and its load; run alone for numbers to publish.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

VIEWS = {
    "all, by confidence, page 1": {"sort": "confidence"},
    "one label, by margin": {"label": "c7", "sort": "margin"},
    "uncertain queue (< 0.5)": {"queue": "uncertain", "threshold": "0.5"},
    "page 2,000 of all": {"sort": "confidence", "page": "2000"},
}


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 2)


def run(rows: int, repeat: int) -> dict:
    from review_fixtures import big_predict_csv
    from starlette.testclient import TestClient

    from fewshot.review.app import build_app
    from fewshot.review.session import ReviewSession

    results: dict = {"rows": rows}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv_path = big_predict_csv(tmp / "big.csv", rows, tmp / "imgs")
        start = time.perf_counter()
        session = ReviewSession(csv_path, images=tmp)
        results["open_s"] = round(time.perf_counter() - start, 3)
        client = TestClient(build_app(session, ["127.0.0.1"]), base_url="http://127.0.0.1:8765")
        headers = {"X-Review-Token": session.token, "Content-Type": "application/json"}
        for name, params in VIEWS.items():
            results[f"page_ms: {name}"] = _median_ms(lambda p=params: client.get("/", params=p), repeat)
            results[f"json_ms: {name}"] = _median_ms(
                lambda p=params: client.get("/api/rows", params=p), repeat
            )
        counter = iter(range(rows))

        def decide():
            body = json.dumps({"action": "accept", "rows": [next(counter)]})
            assert client.post("/api/decide", content=body, headers=headers).status_code == 200

        results["decide_ms"] = _median_ms(decide, repeat)
        start = time.perf_counter()
        body = json.dumps({"label": "c3", "threshold": 0.5})
        accepted = client.post("/api/bulk-accept", content=body, headers=headers).json()["accepted"]
        results[f"bulk_accept_ms ({accepted} images)"] = round(1000 * (time.perf_counter() - start), 2)
        session.close()
        start = time.perf_counter()
        ReviewSession(csv_path, images=tmp).close()
        results["reopen_s"] = round(time.perf_counter() - start, 3)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = run(args.rows, args.repeat)
    for key, value in results.items():
        print(f"{key:45s} {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
