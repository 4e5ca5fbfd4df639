"""Checks `fewshot index build` and `add` make before any embedding: one line, exit code 2."""

from __future__ import annotations

from pathlib import Path


def check_writable(directory: Path, option: str) -> None:
    """Refuse, in one line and before any work, an output folder that cannot be written: the
    folder itself (or the nearest folder above that exists) and the folder holding its lock."""
    import tempfile

    from fewshot.errors import FewshotError

    directory = directory.expanduser().resolve()
    if directory.exists() and not directory.is_dir():
        raise FewshotError(f"{option} {directory} exists and is not a directory")
    for target in (directory, directory.parent):
        existing = next(p for p in (target, *target.parents) if p.exists())
        if not existing.is_dir():
            raise FewshotError(f"{option} {directory}: {existing} is not a directory")
        try:
            tempfile.TemporaryFile(dir=existing).close()
        except OSError as err:
            raise FewshotError(
                f"{option} {directory} cannot be written ({existing}: {err.strerror or err})"
            ) from None


def check_pretrained(encoder: str, model: str | None, pretrained: str | None) -> None:
    """A local CLIP weights file is reloaded on every add and search: it must be safetensors."""
    if encoder != "clip":
        return
    from fewshot.encoders.clip import DEFAULT_MODEL
    from fewshot.index.recorded import check_safetensors, local_weights

    path = local_weights(model or DEFAULT_MODEL, pretrained or "default")
    if path is not None:
        check_safetensors(path, "--pretrained")


def check_trainable(index, count: int) -> None:
    from fewshot.errors import FewshotError

    needed = index.min_training_vectors()
    if count < needed:
        raise FewshotError(
            f"--factory {index.factory!r} needs at least {needed} vectors to train but IMAGES holds "
            f"{count} file(s); use Flat, or fewer IVF lists (FAISS advises 40 images per list)"
        )


def check_rebuildable(index) -> None:
    """Refuse up front an encoder that `add` and `search` cannot rebuild: random initial weights
    (drawn afresh by every rebuild) give vectors that would not match the index."""
    from fewshot.encoders import create_encoder
    from fewshot.errors import FewshotError
    from fewshot.index.recorded import encoder_record, state_digest

    record = encoder_record(index)
    if record is None or "state_sha256" not in record:
        return
    if state_digest(create_encoder(record["name"], **record["config"])) != record["state_sha256"]:
        what = "--pretrained none" if record["name"] == "clip" else f"--encoder {record['name']}"
        raise FewshotError(
            f"{what} has random initial weights, and `index add` and `index search` would rebuild "
            "it with other random weights (vectors that do not match the index); use pretrained "
            "CLIP weights (--pretrained default, a tag or a .safetensors file)"
        )
