"""Device selection: `auto` means CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import torch

from fewshot.errors import FewshotError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"`` into a torch device."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise FewshotError(f"unknown device {device!r}: use auto, cpu, cuda or mps") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise FewshotError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
    return resolved


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype to use on `device`, or None for full precision."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None
