"""Tiny results files for the review tests: a folder of coloured squares and the CSV that
`fewshot label` (or `fewshot predict`) would have written for it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

CLASSES = ["red", "green", "<script>alert(1)</script>"]
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "<script>alert(1)</script>": (40, 60, 220)}
FOLDERS = {"red": "red", "green": "green", "<script>alert(1)</script>": "blue"}


def make_images(root: Path, per_class: int = 4, size: int = 40) -> list[Path]:
    from PIL import Image

    paths = []
    for name in CLASSES:
        folder = root / FOLDERS[name]
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = folder / f"{i:02d}.png"
            shade = np.array(COLOURS[name]) * (0.6 + 0.1 * i)
            Image.new("RGB", (size, size), tuple(int(v) for v in np.clip(shade, 0, 255))).save(path)
            paths.append(path)
    return paths


def label_rows(paths: list[Path], seed: int = 0) -> list[dict]:
    """Rows as `fewshot label --top-k 3` writes them: the true class on top but for a few."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, path in enumerate(paths):
        truth = next(c for c in CLASSES if FOLDERS[c] == path.parent.name)
        others = [c for c in CLASSES if c != truth]
        order = [truth, *others] if n % 5 else [others[0], truth, others[1]]
        p1 = float(rng.uniform(0.4, 0.95))
        p2 = float(rng.uniform(0.0, 1.0 - p1))
        probs = [p1, p2, 1.0 - p1 - p2]
        rows.append({"path": str(path), "labels": order, "probs": sorted(probs, reverse=True)})
    return rows


def write_label_csv(out: Path, rows: list[dict], broken: list[str] = ()) -> Path:
    columns = ["path", "status", "label", "probability"]
    for j in range(1, 4):
        columns += [f"label_{j}", f"probability_{j}"]
    columns += ["organized_to", "error"]
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            values = [row["path"], "ok", row["labels"][0], f"{row['probs'][0]:.6f}"]
            for label, p in zip(row["labels"], row["probs"], strict=True):
                values += [label, f"{p:.6f}"]
            writer.writerow([*values, "", ""])
        for path in broken:
            writer.writerow([path, "error", "", "", "", "", "", "", "", "", "", "unreadable image"])
    return out


def write_predict_csv(out: Path, rows: list[dict], top_k: int = 1) -> Path:
    header = ["path", "label", "probability"]
    if top_k > 1:
        for j in range(1, top_k + 1):
            header += [f"label_{j}", f"probability_{j}"]
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            values = [row["path"], row["labels"][0], f"{row['probs'][0]:.4f}"]
            if top_k > 1:
                for label, p in list(zip(row["labels"], row["probs"], strict=True))[:top_k]:
                    values += [label, f"{p:.4f}"]
            writer.writerow(values)
    return out


def review_workspace(tmp: Path, per_class: int = 4) -> tuple[Path, Path]:
    """``(labels.csv, images root)`` under `tmp`, with one unreadable row."""
    root = tmp / "photos"
    paths = make_images(root, per_class)
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    csv_path = write_label_csv(tmp / "labels.csv", label_rows(paths), broken=[str(root / "broken.jpg")])
    return csv_path, root


def big_predict_csv(out: Path, n: int, root: Path, classes: int = 20, seed: int = 0) -> Path:
    """`n` rows of `fewshot predict --top-k 2` output for images under `root` (not made)."""
    rng = np.random.default_rng(seed)
    p1 = rng.uniform(0.3, 1.0, n)
    p2 = rng.uniform(0.0, 1.0, n) * (1 - p1)
    a = rng.integers(0, classes, n)
    b = (a + 1 + rng.integers(0, classes - 1, n)) % classes
    lines = ["path,label,probability,label_1,probability_1,label_2,probability_2"]
    for i in range(n):
        lines.append(
            f"{root}/c{a[i]}/{i:06d}.jpg,c{a[i]},{p1[i]:.4f},c{a[i]},{p1[i]:.4f},c{b[i]},{p2[i]:.4f}"
        )
    out.write_text("\n".join(lines) + "\n")
    return out
