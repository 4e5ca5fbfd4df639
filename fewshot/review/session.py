"""One review of one results file, as a Python object: everything the page can do, no HTTP.

`ReviewSession` puts together the decisions (`fewshot.review.state`), the files that may be
served (`fewshot.review.files`), the thumbnail cache, the exports and the refit. The web app
(`fewshot.review.app`) is a thin layer of routes over it, and tests and scripts can drive a
review without a browser::

    session = ReviewSession("labels.csv", images="photos")
    page = session.state.page(queue="uncertain", sort="margin")
    session.state.decide("correct", [page.rows[0]], label="cat")
    session.export("csv")
    session.close()
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fewshot.errors import FewshotError
from fewshot.review.files import IMAGE_TYPES, ImageRoot
from fewshot.review.state import ReviewState
from fewshot.review.thumbnails import ThumbnailCache

EXPORTS = ("csv", "folder", "label-studio", "fiftyone")


def review_folder(results: Path) -> Path:
    """``<results>.review/``: thumbnails and exports, beside the results (``<stem>``-named)."""
    return results.with_name(results.name + ".review")


class ReviewSession:
    """A review of `results` (its journal held open: one review per results file at a time).

    Args:
        images: the images root (see `fewshot.review.files`); None: their common folder.
        export_dir: where exports go (default ``<results>.review/export/``).
        encoder: the refit's encoder spec (`fewshot.build.build_encoder`; None: the default).
    """

    def __init__(
        self,
        results: str | os.PathLike[str],
        images: str | os.PathLike[str] | None = None,
        export_dir: str | os.PathLike[str] | None = None,
        encoder: str | None = None,
        device: str = "cpu",
        thumb_size: int = 192,
    ) -> None:
        from fewshot.review.results import load_results

        self.results_path = Path(results).expanduser()
        loaded = load_results(self.results_path)
        self.root = ImageRoot(loaded.paths, images)
        folder = review_folder(self.results_path)
        self.export_dir = Path(export_dir) if export_dir is not None else folder / "export"
        self.thumbs = ThumbnailCache(folder / "thumbs", thumb_size)
        self.encoder, self.device = encoder, device
        self._refitter = None
        self.token = secrets.token_urlsafe(32)  # state-changing requests must carry it
        self.state = ReviewState(self.results_path, loaded)

    def file(self, row: int) -> Path | None:
        """Row `row`'s image file when it may be served (inside the root), else None."""
        if not 0 <= row < len(self.state.results) or not self.state.ok[row]:
            return None
        return self.root.resolve(self.state.results.paths[row])

    def media_type(self, path: Path) -> str:
        return IMAGE_TYPES[path.suffix.lower()]

    def relative(self, row: int) -> str:
        """Row `row`'s path under the images root (a non-UTF-8 name keeps its escapes)."""
        return self.root.relative(self.state.results.paths[row])

    def shown(self, row: int) -> str:
        """The same, fit for the page."""
        from fewshot.review.results import displayable

        return displayable(self.relative(row))

    def export(self, kind: str, mode: str = "copy") -> dict:
        """Write one export into `export_dir`; returns what was written."""
        from fewshot.review import exports

        out = self.export_dir
        if kind == "csv":
            path = exports.export_csv(self.state, out / f"{self.results_path.stem}.reviewed.csv")
            return {"kind": kind, "path": str(path)}
        if kind == "label-studio":
            path = exports.export_label_studio(self.state, out / "label-studio.json", self.relative)
            return {"kind": kind, "path": str(path)}
        if kind == "fiftyone":
            path = exports.export_fiftyone(self.state, out / "fiftyone" / "labels.json", self.relative)
            return {"kind": kind, "path": str(path)}
        if kind == "folder":
            dest = self._free_folder(out / "sorted")
            report = exports.export_folder(self.state, dest, mode, self.file)
            return {"kind": kind, "path": report["dest"], **report}
        raise FewshotError(f"unknown export {kind!r}: choose one of {', '.join(EXPORTS)}")

    @staticmethod
    def _free_folder(base: Path) -> Path:
        """``sorted``, else ``sorted-2``, ``sorted-3``...: a folder export never merges into an old one."""
        candidate, n = base, 1
        while os.path.lexists(candidate):
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")
        return candidate

    def refit(self, method: str = "simpleshot") -> dict:
        from fewshot.review.refit import Refitter

        if self._refitter is None:
            self._refitter = Refitter(self.encoder, self.device)
        return self._refitter.refit(self.state, self.file, method)

    def close(self) -> None:
        self.state.close()

    def __enter__(self) -> ReviewSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
