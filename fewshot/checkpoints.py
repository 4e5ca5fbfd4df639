"""Checkpoints: weights in safetensors plus JSON metadata; loading never unpickles code.

A checkpoint is one ``.safetensors`` file. Its header metadata holds a JSON document under
the key ``"fewshot"``: which learner and encoder to rebuild (registry names and constructor
arguments), the data set, split and image size it was trained on, the validation score and
the toolkit version. `fewshot.model_loading.load_learner` (re-exported here) rebuilds the
model from the registries and loads the weights; a truncated, foreign or tampered file raises
`CheckpointError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from fewshot.errors import CheckpointError, check_format_header
from fewshot.fileio import atomic_write_bytes
from fewshot.lazy import lazy_attributes

FORMAT = "fewshot-checkpoint"
FORMAT_VERSION = 1
META_KEY = "fewshot"

# Kept importable from here; the registries it needs sit above this module.
__getattr__, __dir__ = lazy_attributes(__name__, {"load_learner": "fewshot.model_loading"})


def save_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module, metadata: dict[str, Any]) -> Path:
    """Save ``model.state_dict()`` and `metadata` (JSON-able) atomically as safetensors."""
    from safetensors.torch import save

    from fewshot import __version__

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "toolkit_version": __version__,
        **metadata,
        "weights_sha256": weights_digest(tensors),
    }
    payload = save(tensors, metadata={META_KEY: json.dumps(meta)})
    return atomic_write_bytes(path, payload)


def weights_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes (in name order)."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _parse(path: Path, payload: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the header metadata of a safetensors file; a pickle is refused unread."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(payload)
        header_len = int.from_bytes(payload[:8], "little")
        header = json.loads(payload[8 : 8 + header_len])
        return tensors, header.get("__metadata__") or {}
    except (SafetensorError, ValueError, KeyError, TypeError, AttributeError, OverflowError) as err:
        if payload[:1] == b"\x80" or payload[:4] == b"PK\x03\x04":
            # a pickle (protocol 2+) or a torch.save zip archive: refused, never unpickled
            raise CheckpointError(
                f"{path} looks like a pickle or torch.save file, not a fewshot checkpoint; "
                "fewshot never unpickles files (they can run code)"
            ) from err
        raise CheckpointError(
            f"{path} is not a readable fewshot checkpoint (truncated or foreign file): "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from err


def _fewshot_metadata(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    """The fewshot document of a safetensors header, its format and version checked."""
    if META_KEY not in metadata:
        raise CheckpointError(
            f"{path} is a safetensors file but not a fewshot checkpoint (no fewshot metadata)"
        )
    try:
        meta = json.loads(metadata[META_KEY])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: its fewshot metadata is not valid JSON (tampered?)") from err
    return check_format_header(meta, path, FORMAT, FORMAT_VERSION, "fewshot checkpoint")


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and metadata of a checkpoint, validated.

    Raises:
        CheckpointError: the file is missing, not a safetensors file (e.g. a pickle),
            truncated, or lacks fewshot metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err.strerror or err}") from err
    tensors, metadata = _parse(path, payload)
    meta = _fewshot_metadata(path, metadata)
    expected = meta.get("weights_sha256")
    if expected is not None and expected != weights_digest(tensors):
        raise CheckpointError(
            f"{path}: its weights do not match the digest in its metadata (tampered or damaged)"
        )
    return tensors, meta


def learner_metadata(learner_name: str, encoder_name: str, learner: Any) -> dict[str, Any]:
    """The metadata that lets `load_learner` rebuild `learner`."""
    return {
        "learner": learner_name,
        "learner_config": learner.config(),
        "encoder": encoder_name,
        "encoder_config": learner.encoder.config(),
    }
