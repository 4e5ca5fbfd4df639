"""The encoder an index records in its sidecar, checked before it is rebuilt.

`add`, `search` and `load`-then-`search_text` rebuild the encoder from the sidecar's record
(registry name and constructor config). A sidecar is a plain JSON file that anyone can edit,
so the record is checked before anything is built from it:

- the encoder must be registered, and its config may hold only JSON scalars under the
  constructor's own parameter names (for CLIP: ``model``, ``pretrained``, ``precision``);
- CLIP weights from a local file must be a ``.safetensors`` file: open_clip hands any other
  file to ``torch.load``, an unpickler, and fewshot never unpickles a file a sidecar names;
- the record carries the size and SHA-256 of that weights file (``weights``), and a file that
  differs (another file named, or the file replaced since) is refused: its vectors would not
  match the index's;
- an encoder whose weights no file records (random initial weights, ``--pretrained none``, or
  a trained non-CLIP encoder attached by hand) gets a SHA-256 of its parameters
  (``state_sha256``); a rebuilt encoder with other parameters is refused, since the record
  cannot bring those weights back. (Weights named by an open_clip tag are fixed by the tag.)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import struct
from pathlib import Path
from typing import Any

from fewshot.errors import CheckpointError, FewshotError

CLIP_KEYS = frozenset({"model", "pretrained", "precision"})
_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> SHA-256


def file_digest(path: Path) -> tuple[int, str]:
    """``(size, SHA-256)`` of a file, remembered per (path, size, mtime) within the process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _digests[key] = digest.hexdigest()
    return stat.st_size, _digests[key]


def local_weights(model: str, pretrained: str | None) -> Path | None:
    """The local file CLIP weights `pretrained` stand for, or None (a tag, or random weights).

    Mirrors `fewshot.encoders.clip.load_open_clip`: a tag of the model wins over a file of
    the same name; anything else that is not a tag is a file path.
    """
    import open_clip

    from fewshot.encoders.clip import resolve_model_name, resolve_pretrained

    name = resolve_model_name(model)
    weights = resolve_pretrained(name, pretrained)
    if weights is None or weights in open_clip.list_pretrained_tags_by_model(name):
        return None
    return Path(weights).expanduser().resolve()


def check_safetensors(path: Path, what: str) -> None:
    """Refuse a weights file that open_clip would unpickle, or that is not safetensors inside."""
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"{what} {path} is not a .safetensors file; an index reloads its encoder's weights on "
            "every add and search and never unpickles them (convert the weights to safetensors)"
        )
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size)) if 1 < size < 100_000_000 else None
    except (OSError, struct.error, ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict):
        raise CheckpointError(f"{what} {path} is not a readable safetensors file")


def weights_record(name: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """``{"bytes", "sha256"}`` of the local weights file a CLIP record loads, else None."""
    if name != "clip":
        return None
    path = local_weights(config.get("model", "ViT-B-32"), config.get("pretrained", "default"))
    if path is None or not path.is_file():
        return None
    size, sha = file_digest(path)
    return {"bytes": size, "sha256": sha}


def clip_config(encoder: Any, config: dict[str, Any]) -> dict[str, Any]:
    """A CLIP config whose local weights file is named by its absolute path (any working folder)."""
    pretrained = config.get("pretrained")
    resolved = getattr(encoder, "pretrained", None)
    if pretrained in (None, "default") or not isinstance(resolved, str):
        return config
    if Path(resolved).is_file():
        return {**config, "pretrained": str(Path(resolved).resolve())}
    return config


def check_record_shape(record: Any) -> bool:
    """Cheap structural check (no imports), for reading a sidecar."""
    if record is None:
        return True
    if not (isinstance(record, dict) and isinstance(record.get("name"), str)):
        return False
    config, weights = record.get("config"), record.get("weights")
    scalars = (str, int, float, bool, type(None))
    if not isinstance(config, dict) or not all(isinstance(v, scalars) for v in config.values()):
        return False
    if not isinstance(record.get("state_sha256", ""), str):
        return False
    return weights is None or (
        isinstance(weights, dict)
        and isinstance(weights.get("bytes"), int)
        and isinstance(weights.get("sha256"), str)
    )


def verify_record(record: dict[str, Any], where: str | os.PathLike[str]) -> None:
    """Everything rebuilding the recorded encoder relies on, checked without building it.

    Raises:
        CheckpointError: unknown encoder, foreign config keys, weights that are missing, not
            safetensors, or not the weights the index was built with.
    """
    from fewshot.encoders import ENCODERS

    name, config = record["name"], record["config"]
    if name not in ENCODERS:
        raise CheckpointError(f"{where}: the index records encoder {name!r}, which is not registered")
    allowed = CLIP_KEYS if name == "clip" else constructor_parameters(ENCODERS.get(name))
    foreign = sorted(set(config) - allowed)
    if foreign:
        raise CheckpointError(f"{where}: the encoder record has unexpected settings {foreign}")
    if name != "clip":
        return
    try:
        path = local_weights(config.get("model", "ViT-B-32"), config.get("pretrained", "default"))
    except FewshotError as err:
        raise CheckpointError(f"{where}: recorded CLIP encoder: {err}") from err
    if path is None:
        return
    check_safetensors(path, f"{where}: the recorded CLIP weights file")
    expected = record.get("weights")
    if expected is not None and file_digest(path) != (expected["bytes"], expected["sha256"]):
        raise CheckpointError(
            f"{where}: the CLIP weights file {path} is not the one this index was built with "
            "(size or SHA-256 differs); its vectors would not match the index. Rebuild the index "
            "or restore those weights"
        )


def encoder_record(index: Any) -> dict[str, Any] | None:
    """The sidecar's record of `index`'s encoder: name, config, and its weights file's digest."""
    if index.encoder_name is None:
        return None
    encoder = index.encoder
    if encoder is None or not hasattr(encoder, "config"):
        return index.recorded_encoder  # not rebuilt in this process: keep the record as loaded
    config = encoder.config()
    if index.encoder_name == "clip":
        config = clip_config(encoder, config)
    record: dict[str, Any] = {"name": index.encoder_name, "config": config}
    weights = weights_record(index.encoder_name, config)
    if weights is not None:
        record["weights"] = weights
    elif not _named_by_tag(index.encoder_name, encoder):
        digest = state_digest(encoder)
        if digest is not None:
            record["state_sha256"] = digest
    return record


def _named_by_tag(name: str, encoder: Any) -> bool:
    return name == "clip" and getattr(encoder, "pretrained", None) is not None


def state_digest(encoder: Any) -> str | None:
    """SHA-256 over an encoder's parameters and buffers (names, dtypes, shapes, bytes); None
    when it has none (its output cannot depend on weights)."""
    import torch

    state = encoder.state_dict() if hasattr(encoder, "state_dict") else {}
    if not state:
        return None
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_rebuilt(record: dict[str, Any], encoder: Any, where: str | os.PathLike[str]) -> None:
    """Refuse a rebuilt encoder whose parameters differ from those recorded (`state_sha256`)."""
    expected = record.get("state_sha256")
    if expected is not None and state_digest(encoder) != expected:
        raise CheckpointError(
            f"{where}: the {record['name']} encoder rebuilt from the index's record has other weights "
            "than the one that built the index (random initial weights, or trained weights no file "
            "records); its vectors would not match. Pass that encoder (EmbeddingIndex.load(..., "
            "encoder=...)), or build the index with pretrained weights"
        )


def constructor_parameters(factory: Any) -> frozenset[str]:
    """The parameter names of an encoder's constructor (what a record's config may hold)."""
    try:
        return frozenset(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return frozenset()


def check_local_weights(name: str, model: str | None, pretrained: str | None) -> None:
    """A local CLIP weights file is reloaded on every add and search: it must be safetensors.
    Other encoders load no weights file: nothing to check."""
    if name != "clip":
        return
    from fewshot.encoders.clip import DEFAULT_MODEL

    path = local_weights(model or DEFAULT_MODEL, pretrained or "default")
    if path is not None:
        check_safetensors(path, "--pretrained")


def check_rebuildable(index: Any) -> None:
    """Refuse up front an encoder that `add` and `search` cannot rebuild: random initial weights
    (drawn afresh by every rebuild) give vectors that would not match the index."""
    from fewshot.encoders import create_encoder

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
