"""How a model's input images are prepared, stored in its checkpoint so `predict` can repeat it.

Omniglot tensors hold ink = 1 on paper = 0, while the scanned or drawn images a user gives
are dark ink on white paper: a model trained on Omniglot needs its inputs converted to
grey, inverted and resized exactly as the training data were. The `Preprocessing` record
says how; `Preprocessing.transform()` turns a PIL image into the tensor the encoder expects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from fewshot.errors import CheckpointError

RESIZES = ("torch", "pil", "crop")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
LATER_DEFAULTS = {"interpolation": "bilinear", "crop_pct": None, "normalize_in": "transform"}


@dataclass(frozen=True)
class Preprocessing:
    """Image preparation of one model.

    Attributes:
        image_size: output side; images are resized to ``image_size x image_size``
            (bilinear with antialiasing, as the Omniglot loader does).
        channels: 1 (grey) or 3 (RGB).
        invert: True when the model saw ink = 1 on paper = 0 (Omniglot): pixel values are
            replaced by ``1 - value`` after scaling to ``[0, 1]``.
        mean, std: per-channel normalisation applied last, or None.
        resize: ``"torch"`` (bilinear with antialiasing on the tensor, as the Omniglot loader
            resizes), ``"pil"`` (`fewshot.data.transforms.ImageTransform`, as image folders
            are loaded) or ``"crop"`` (an ImageNet model's evaluation transform: the shorter
            side resized to ``image_size / crop_pct`` with ``interpolation``, then the central
            ``image_size`` square), so that user images are resized exactly as the training
            images were.
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"`` (``"crop"`` resizing).
        crop_pct: the fraction of the resized image the central crop keeps (``"crop"``).
        normalize_in: ``"transform"`` (`transform` applies ``mean``/``std``) or ``"encoder"``
            (the encoder normalises its ``[0, 1]`` inputs itself, so tensor data sets need no
            transform; ``mean``/``std`` are then recorded, not applied here).

    Records written before ``interpolation``, ``crop_pct`` and ``normalize_in`` existed read
    with their defaults, which describe what those checkpoints did.
    """

    image_size: int
    channels: int = 1
    invert: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: str = "torch"
    interpolation: str = "bilinear"
    crop_pct: float | None = None
    normalize_in: str = "transform"

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if int(self.image_size) < 1:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if self.resize not in RESIZES:
            raise ValueError(f"resize must be one of {', '.join(RESIZES)}, got {self.resize!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}")
        if self.crop_pct is not None and not 0 < float(self.crop_pct) <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.normalize_in not in ("transform", "encoder"):
            raise ValueError(f"normalize_in must be 'transform' or 'encoder', got {self.normalize_in!r}")

    @property
    def mode(self) -> str:
        """The PIL mode images are decoded to: ``"L"`` or ``"RGB"``."""
        return "L" if self.channels == 1 else "RGB"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields; those added later are left out at their defaults, so a record
        that does not use them is the same as before they existed."""
        out = asdict(self)
        for key in ("mean", "std"):
            if out[key] is not None:
                out[key] = list(out[key])
        for key, default in LATER_DEFAULTS.items():
            if out[key] == default:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocessing:
        try:
            return cls(
                image_size=int(values["image_size"]),
                channels=int(values.get("channels", 1)),
                invert=bool(values.get("invert", False)),
                mean=tuple(float(v) for v in values["mean"]) if values.get("mean") is not None else None,
                std=tuple(float(v) for v in values["std"]) if values.get("std") is not None else None,
                resize=str(values.get("resize", "torch")),
                interpolation=str(values.get("interpolation", "bilinear")),
                crop_pct=float(values["crop_pct"]) if values.get("crop_pct") is not None else None,
                normalize_in=str(values.get("normalize_in", "transform")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"unreadable preprocessing record {values!r} ({err})") from err

    def transform(self) -> Callable:
        """A picklable function: PIL image -> float tensor ``(channels, image_size, image_size)``."""
        return _Transform(self)


class _Transform:
    """Callable kept at module level so DataLoader worker processes can pickle it."""

    def __init__(self, prep: Preprocessing) -> None:
        self.prep = prep

    def __call__(self, image):
        import numpy as np
        import torch
        import torch.nn.functional as F

        prep = self.prep
        if prep.resize == "crop":
            x = _center_crop(image.convert(prep.mode), prep)
            x = 1.0 - x if prep.invert else x
        elif prep.resize == "pil":
            from fewshot.data.transforms import ImageTransform

            x = ImageTransform(prep.image_size, prep.channels, prep.invert)(image)
        else:
            array = np.asarray(image.convert(prep.mode), dtype=np.float32) / 255.0
            x = torch.from_numpy(array.copy())
            x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
            if prep.invert:
                x = 1.0 - x
            if tuple(x.shape[-2:]) != (prep.image_size, prep.image_size):
                x = F.interpolate(
                    x.unsqueeze(0), size=(prep.image_size, prep.image_size), mode="bilinear", antialias=True
                )[0]
        if prep.mean is not None and prep.std is not None and prep.normalize_in == "transform":
            mean = torch.tensor(prep.mean).view(-1, 1, 1)
            std = torch.tensor(prep.std).view(-1, 1, 1)
            x = (x - mean) / std
        return x.contiguous()


def _center_crop(image, prep: Preprocessing):
    """timm's and torchvision's evaluation resize (their own functions, so the pixels are the
    same): PIL image -> ``(C, size, size)`` in [0, 1]."""
    import math

    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    size = prep.image_size
    scale = math.floor(size / (prep.crop_pct or 0.875) + 1e-6)  # 240 / (240 / 255) -> 255, not 254
    image = TF.resize(image, scale, interpolation=InterpolationMode(prep.interpolation))
    return TF.to_tensor(TF.center_crop(image, [size, size]))


def preprocessing_from_data(data) -> Preprocessing | None:
    """The preparation that gives images like those of `data` (a `LabeledTensors`).

    A loader may state it in ``data.info["preprocessing"]``; otherwise it is read off the
    tensors (side, channels) with Omniglot's ink = 1 convention when the data are Omniglot.
    Returns None for non-image data (embeddings).
    """
    stated = data.info.get("preprocessing") if isinstance(data.info, dict) else None
    if stated:
        return stated if isinstance(stated, Preprocessing) else Preprocessing.from_dict(stated)
    if data.data.ndim != 4 or data.data.shape[1] not in (1, 3):
        return None
    return Preprocessing(
        image_size=int(data.data.shape[-1]),
        channels=int(data.data.shape[1]),
        invert=data.info.get("dataset") == "omniglot",
        resize="pil" if data.info.get("dataset") == "folder" else "torch",
    )


def preprocessing_from_metadata(meta: dict[str, Any]) -> Preprocessing:
    """The preparation recorded in checkpoint metadata.

    Checkpoints written before the record existed are understood when they were trained
    on Omniglot (grey, inverted, the recorded image size).

    Raises:
        CheckpointError: the checkpoint says nothing about how to prepare images.
    """
    if meta.get("preprocessing"):
        return Preprocessing.from_dict(meta["preprocessing"])
    dataset = meta.get("dataset") or {}
    if dataset.get("dataset") == "omniglot":
        channels = int((meta.get("encoder_config") or {}).get("in_channels", 1))
        return Preprocessing(image_size=int(dataset.get("image_size", 28)), channels=channels, invert=True)
    raise CheckpointError(
        "the checkpoint does not record how to prepare images (no 'preprocessing' metadata): "
        "it cannot classify image files"
    )


def preprocessing_of(meta: dict[str, Any]) -> dict | None:
    """A checkpoint's image preparation as a plain dict (``preprocessing``, else inferred from
    the data set it was trained on), or None when the metadata does not say."""
    if meta.get("preprocessing"):
        return dict(meta["preprocessing"])
    dataset = meta.get("dataset") or {}
    if dataset.get("dataset") == "omniglot":
        return {"image_size": int(dataset.get("image_size") or 28), "channels": 1, "invert": True}
    if dataset.get("image_size"):
        return {"image_size": int(dataset["image_size"]), "channels": 3, "invert": False}
    return None
