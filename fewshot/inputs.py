"""Checks at the public entry points (learner ``fit``/``predict``/``predict_proba``,
``Encoder.encode``/``encode_batched``, ``evaluate``): what a caller passes becomes a tensor of
the expected rank and a float dtype, or a `FewshotError` that says what was expected.

Numpy arrays are converted, float64 is cast to float32 (the encoders' dtype); PIL images,
integer images, a wrong rank, an empty batch and NaN/inf values are refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fewshot.errors import FewshotError


def expected_shape(input_size: tuple[int, ...] | None) -> str:
    """``(n, C, H, W)`` with the encoder's sizes, or ``(n, d)`` for feature inputs."""
    if input_size is None:
        return "(n, d)"
    c, h, w = input_size
    return f"(n, {c}, {h}, {w})"


def _to_tensor(x: Any, what: str, shape: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise FewshotError(f"{what} is a numpy array of objects: expected numbers {shape}")
        return torch.from_numpy(np.ascontiguousarray(x))
    items = x if isinstance(x, (list, tuple)) and x else [x]
    if type(items[0]).__module__.startswith("PIL."):
        raise FewshotError(
            f"{what} is a PIL image: expected a tensor {shape}; convert images first, e.g. "
            "torch.stack([encoder.preprocess(im) for im in images]) for CLIP, or "
            "fewshot.data.transforms.image_transform(size, channels)"
        )
    if isinstance(x, (list, tuple)) and x and all(isinstance(t, torch.Tensor) for t in x):
        raise FewshotError(f"{what} is a list of tensors: stack them into one tensor {shape} (torch.stack)")
    raise FewshotError(f"{what} is a {type(x).__name__}: expected a torch.Tensor or numpy array {shape}")


def model_dtype(module: Any) -> torch.dtype:
    """The dtype of a module's first floating-point parameter (float32 when it has none)."""
    parameters = module.parameters() if isinstance(module, torch.nn.Module) else ()
    return next((p.dtype for p in parameters if p.is_floating_point()), torch.float32)


def check_batch(
    x: Any, what: str, input_size: tuple[int, ...] | None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """`x` as a float tensor of shape ``(n, C, H, W)`` (image encoders) or ``(n, d)`` (features).

    Args:
        x: a tensor or numpy array.
        what: its name in messages (``support_x``, ``query_x``, ``x``).
        input_size: ``(C, H, W)`` of the encoder, or None for feature inputs.
        dtype: float64 input is cast to this (the model's dtype, see `model_dtype`).
    """
    shape = expected_shape(input_size)
    x = _to_tensor(x, what, shape)
    rank_ok = x.ndim == 4 if input_size is not None else x.ndim >= 2
    if not rank_ok:
        hint = "; for one item use x[None]" if x.ndim == (3 if input_size is not None else 1) else ""
        raise FewshotError(f"{what} has shape {tuple(x.shape)}: expected {shape}{hint}")
    if x.shape[0] == 0:
        raise FewshotError(f"{what} is empty (shape {tuple(x.shape)}): expected at least one item {shape}")
    if not x.is_floating_point():
        raise FewshotError(
            f"{what} has dtype {x.dtype}: expected float values {shape} (images in [0, 1]: x.float() / 255)"
        )
    if x.dtype == torch.float64 and dtype != torch.float64:
        x = x.to(dtype)
    if not bool(torch.isfinite(x).all()):
        raise FewshotError(f"{what} holds NaN or infinite values: every value must be finite")
    return x


def check_labels(y: Any, n_items: int, what: str = "support_y") -> torch.Tensor:
    """`y` as an int64 tensor ``(n_items,)`` of class labels (any integer values)."""
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(np.ascontiguousarray(y)) if y.dtype != object else y
    if not isinstance(y, torch.Tensor):
        raise FewshotError(f"{what} is a {type(y).__name__}: expected integer labels ({n_items},)")
    if y.ndim != 1 or y.shape[0] != n_items:
        raise FewshotError(f"{what} has shape {tuple(y.shape)}: expected one label per item, ({n_items},)")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise FewshotError(f"{what} has dtype {y.dtype}: expected integer class labels")
    return y.long()


__all__ = ["check_batch", "check_labels", "expected_shape", "model_dtype"]
