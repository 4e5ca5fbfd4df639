"""CLIP (open_clip) as an `Encoder`: images and texts to L2-normalised vectors.

Any open_clip architecture (``open_clip.list_models()``) with a pretrained tag or a local
weights file, plus ``micro-clip``: a tiny CLIP shipped with the package (config and weights in
``fewshot/models/``) that runs anywhere offline and really classifies synthetic coloured
shapes (see `fewshot.zeroshot.micro_clip`). open_clip is imported only when an encoder is built.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fewshot.device import autocast_dtype, resolve_device
from fewshot.encoders import ENCODERS
from fewshot.encoders.base import Encoder
from fewshot.errors import FewshotError, ModelUnavailableError

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
MICRO_CLIP = "micro-clip"
#: ``pretrained="default"`` picks these weights; other models get open_clip's first tag.
DEFAULT_TAGS = {DEFAULT_MODEL: DEFAULT_PRETRAINED}
PRECISIONS = {"auto", "fp32", "bf16", "fp16"}


def micro_clip_files() -> tuple[Path, Path]:
    """The shipped micro CLIP: ``(config JSON, weights .safetensors)``."""
    from fewshot.models import MODELS_DIR

    return MODELS_DIR / f"{MICRO_CLIP}.json", MODELS_DIR / f"{MICRO_CLIP}.safetensors"


def register_model_configs() -> None:
    """Make ``micro-clip`` known to open_clip (idempotent)."""
    import open_clip

    if MICRO_CLIP not in open_clip.list_models():
        open_clip.add_model_config(micro_clip_files()[0])


def resolve_model_name(model: str) -> str:
    """An open_clip model name; a path to a model-config JSON is registered under its file stem."""
    import open_clip

    register_model_configs()
    if model.endswith(".json"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise FewshotError(f"model config {path} does not exist")
        open_clip.add_model_config(path)
        model = path.stem
    name = model.replace("/", "-")
    if name not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if name.lower() in m.lower()][:10]
        hint = f" (close: {', '.join(close)})" if close else ""
        raise FewshotError(
            f"unknown CLIP model {model!r}{hint}; see `python -c 'import open_clip; "
            f"print(open_clip.list_models())'` or use {MICRO_CLIP!r}"
        )
    return name


def resolve_pretrained(model: str, pretrained: str | None) -> str | None:
    """``"default"`` -> the model's recommended weights; ``None``/``"none"`` -> random init."""
    import open_clip

    if pretrained is None or pretrained.lower() in ("none", "random"):
        return None
    if pretrained == "default":
        if model == MICRO_CLIP:
            return str(micro_clip_files()[1])
        if model in DEFAULT_TAGS:
            return DEFAULT_TAGS[model]
        tags = open_clip.list_pretrained_tags_by_model(model)
        if not tags:
            raise ModelUnavailableError(
                f"open_clip has no pretrained weights for {model!r}: pass --pretrained PATH "
                "(a local weights file) or --pretrained none (random weights)"
            )
        return tags[0]
    return pretrained


def _download_location(model: str, tag: str) -> str:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag) or {}
    if cfg.get("hf_hub"):
        try:
            from huggingface_hub.constants import HF_HUB_CACHE
        except ImportError:  # pragma: no cover - huggingface_hub ships with open_clip
            HF_HUB_CACHE = "~/.cache/huggingface/hub"
        repo = cfg["hf_hub"].rstrip("/").split("/")
        return (
            f"the Hugging Face cache {HF_HUB_CACHE} (repository {'/'.join(repo[:2])}; "
            "copy a populated cache there and set HF_HUB_OFFLINE=1)"
        )
    return f"open_clip's download folder {os.path.expanduser('~/.cache/clip')} (file from {cfg.get('url')})"


def _cached_or_reachable(model: str, tag: str, cache_dir: str | None) -> bool:
    """False when the weights are not cached and their host cannot be reached (fail fast offline)."""
    import socket
    from urllib.parse import urlparse

    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag) or {}
    if cfg.get("hf_hub"):
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover
            return True

        parts = cfg["hf_hub"].rstrip("/").split("/")
        repo = "/".join(parts[:2])
        names = (
            [parts[2]] if len(parts) > 2 else ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"]
        )
        if any(isinstance(try_to_load_from_cache(repo, n, cache_dir=cache_dir), str) for n in names):
            return True
        host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    elif cfg.get("url"):
        target = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(cfg["url"])
        if target.is_file():
            return True
        host = urlparse(cfg["url"]).hostname
    else:
        return True
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError:
        return False
    return True


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")


@contextlib.contextmanager
def _quiet_random_init(active: bool):
    """Without weights open_clip warns "No pretrained weights loaded" on the root logger; we
    either load our own weights next (checkpoints) or report "random weights" ourselves."""
    if not active:
        yield
        return
    root, drop = logging.getLogger(), _DropRandomInitWarning()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _checked_weights(name: str, weights: str | None, cache_dir: str | None) -> tuple[str | None, bool]:
    """``(weights, is_tag)``: an open_clip tag of `name` that can be had, or an existing local
    file (path expanded), or None (random weights); anything else is refused."""
    import open_clip

    is_tag = weights is not None and weights in open_clip.list_pretrained_tags_by_model(name)
    if weights is not None and not is_tag and not Path(weights).expanduser().is_file():
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ModelUnavailableError(
            f"--pretrained {weights!r} is neither an existing weights file nor a tag of {name} "
            f"(tags: {', '.join(tags) or 'none'})"
        )
    if weights is not None and not is_tag:
        weights = str(Path(weights).expanduser())
    if is_tag and not _cached_or_reachable(name, weights, cache_dir):
        raise ModelUnavailableError(
            f"the open_clip weights {name}/{weights} are not downloaded and cannot be fetched (offline). "
            f"Either pass a local weights file with --pretrained PATH, or place the download in "
            f"{_download_location(name, weights)}. Offline demo: --model {MICRO_CLIP}"
        )
    return weights, is_tag


def _create_model(name: str, weights: str | None, is_tag: bool, device: torch.device, cache_dir: str | None):
    """open_clip's ``(model, preprocess)``; a failed download or load is a `ModelUnavailableError`."""
    import open_clip

    try:
        with _quiet_random_init(weights is None):
            clip, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=weights, device=device, cache_dir=cache_dir
            )
    except RuntimeError as err:
        if is_tag and "download" in str(err).lower():
            raise ModelUnavailableError(
                f"cannot download the open_clip weights {name}/{weights} (no internet?). Either pass a "
                f"local weights file with --pretrained PATH, or place the download in "
                f"{_download_location(name, weights)}. Offline demo: --model {MICRO_CLIP}"
            ) from err
        raise ModelUnavailableError(
            f"cannot load {name} weights from {weights}: {str(err).splitlines()[0]}"
        ) from err
    except (OSError, ValueError, KeyError) as err:
        raise ModelUnavailableError(
            f"cannot load {name} weights from {weights}: {str(err).splitlines()[0]}"
        ) from err
    return clip, preprocess


def load_open_clip(model: str, pretrained: str | None, device: torch.device, cache_dir: str | None = None):
    """Build an open_clip model, its eval preprocess and tokenizer; clear errors when weights are missing.

    Returns:
        ``(model, preprocess, tokenizer, resolved_name, resolved_pretrained)``.
    Raises:
        FewshotError: unknown model. ModelUnavailableError: weights cannot be had.
    """
    import open_clip

    name = resolve_model_name(model)
    weights, is_tag = _checked_weights(name, resolve_pretrained(name, pretrained), cache_dir)
    clip, preprocess = _create_model(name, weights, is_tag, device, cache_dir)
    tokenizer = open_clip.get_tokenizer(name)
    return clip, preprocess, tokenizer, name, weights


@ENCODERS.register("clip")
class ClipEncoder(Encoder):
    """An open_clip model as an encoder of images and texts.

    Args:
        model: open_clip architecture (``ViT-B-32``, ``ViT-L-14``, ..., ``micro-clip``) or a
            path to an open_clip model-config JSON.
        pretrained: an open_clip tag (``laion2b_s34b_b79k``, ``openai``, ...), a local weights
            file, ``"default"`` (``laion2b_s34b_b79k`` for ViT-B-32, the shipped weights for
            ``micro-clip``, open_clip's first tag otherwise) or None for random weights.
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ...
        precision: ``auto`` (bf16/fp16 autocast on CUDA, fp32 elsewhere), ``fp32``, ``bf16``,
            ``fp16``. Weights stay fp32; mixed precision is autocast.
        cache_dir: where open_clip keeps downloads (default: its own cache).

    Shapes: ``encode`` ``(n, 3, H, W)`` preprocessed images -> ``(n, embed_dim)`` L2-normalised
    float32; ``encode_text`` ``list[str]`` (n) -> ``(n, embed_dim)`` L2-normalised float32.
    ``preprocess`` turns one PIL image into ``(3, H, W)``; ``input_size`` is ``(3, H, W)``.
    """

    reads_images = True  # its own preprocess: PIL images, not preprocessed tensors

    @classmethod
    def model_card(cls) -> dict:
        """What `fewshot models` says of CLIP: the weights depend on the ``--pretrained`` tag."""
        return {
            "summary": "An open_clip model as an encoder of images and texts.",
            "source": "open_clip (github.com/mlfoundations/open_clip); micro-clip: this project",
            "training_data": "per tag (e.g. LAION-2B for laion2b_s34b_b79k, OpenAI's WIT for openai); "
            "micro-clip: synthetic shapes (fewshot.tools.shapes)",
            "licence": "open_clip code MIT; weights per tag (see the tag's model card); micro-clip: MIT",
        }

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        pretrained: str | None = "default",
        device: str | torch.device = "auto",
        precision: str = "auto",
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise FewshotError(
                f"unknown precision {precision!r}; choose one of: {', '.join(sorted(PRECISIONS))}"
            )
        torch_device = resolve_device(device)
        clip, preprocess, tokenizer, name, weights = load_open_clip(
            model, pretrained, torch_device, cache_dir
        )
        self.model_name, self.pretrained, self.precision = name, weights, precision
        self._requested_pretrained = pretrained
        self.model = clip.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.embed_dim = int(clip.visual.output_dim)
        size = clip.visual.image_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        self.input_size = (3, int(height), int(width))

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale.device

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature, ``exp(logit_scale)`` (100 for trained CLIPs)."""
        return float(self.model.logit_scale.detach().exp().clamp(max=100.0))

    def _autocast(self):
        device = self.device
        if self.precision == "fp32":
            return contextlib.nullcontext()
        if self.precision == "auto":
            dtype = autocast_dtype(device)
            if dtype is None:
                return contextlib.nullcontext()
        else:
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(n, 3, H, W)`` preprocessed images -> ``(n, embed_dim)`` L2-normalised float32."""
        images = images.to(self.device, non_blocking=True)
        with self._autocast():
            features = self.model.encode_image(images)
        return F.normalize(features.float(), dim=-1)

    @torch.no_grad()
    def encode_text(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """``n`` strings -> ``(n, embed_dim)`` L2-normalised float32 (no gradients), on the model's device."""
        if isinstance(texts, str):
            texts = [texts]
        chunks = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[start : start + batch_size])).to(self.device)
            with self._autocast():
                features = self.model.encode_text(tokens)
            chunks.append(F.normalize(features.float(), dim=-1))
        return torch.cat(chunks) if chunks else torch.empty(0, self.embed_dim, device=self.device)

    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this encoder (device excluded)."""
        pretrained = self._requested_pretrained
        return {"model": self.model_name, "pretrained": pretrained, "precision": self.precision}

    def describe(self) -> str:
        return f"{self.model_name} ({self.pretrained or 'random weights'})"
