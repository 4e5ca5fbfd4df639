"""The one encoder interface shared by every learner, the zero-shot classifier and the index."""

from __future__ import annotations

import torch
from torch import nn

from fewshot.encoders import ENCODERS


class Encoder(nn.Module):
    """Maps a batch of inputs to embeddings.

    Subclasses set `embed_dim` and implement `forward`. `encode` is what consumers call:
    ``encode(x)`` with ``x`` ``(n, ...)`` returns ``(n, embed_dim)`` float embeddings.

    Attributes:
        embed_dim: size of one embedding.
        input_size: ``(channels, height, width)`` the encoder expects, or None when it takes
            non-image inputs (precomputed features).
    """

    embed_dim: int
    input_size: tuple[int, int, int] | None = None
    #: Constructor arguments `fewshot.build.build_encoder` fills in from the data when the
    #: user gives none: argument name -> ``"channels"`` (``shape[1]`` of ``(n, C, H, W)``
    #: images), ``"side"`` (``shape[-1]``) or ``"features"`` (``shape[-1]`` of ``(n, d)``).
    sized_by_data: dict[str, str] = {}
    #: True when the encoder prepares its inputs from PIL images itself (``preprocess``, as
    #: CLIP does), so it cannot read a data set that comes preprocessed (Omniglot's tensors).
    reads_images: bool = False
    #: False for encoders with nothing learned (`IdentityEncoder`): no weights to describe.
    has_weights: bool = True

    def _check(self, x) -> torch.Tensor:
        from fewshot.inputs import check_batch, model_dtype

        return check_batch(x, "x", self.input_size, model_dtype(self))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, ...)`` inputs -> ``(n, embed_dim)`` embeddings.

        ``x`` is checked first (`fewshot.inputs.check_batch`: numpy converted, float64 cast,
        wrong rank, empty batches and NaN/inf refused); call the module itself to skip that.
        """
        return self(self._check(x))

    @torch.no_grad()
    def encode_batched(
        self, x: torch.Tensor, batch_size: int | None = None, progress: bool = False
    ) -> torch.Tensor:
        """Embed many inputs in eval mode without gradients; returns ``(n, embed_dim)`` on CPU.

        Runs `inference_form` of the encoder (BatchNorm folded into convolutions, activations
        after max-pooling) in channels-last layout. `batch_size` defaults to 512 on GPUs and,
        on CPU, to the largest power of two whose biggest intermediate tensor stays near
        8 MiB (`probe_batch_size`; at least 32, `cpu_batch_size`): bigger batches are slower
        there. The encoder is left as it was found (training flag and memory layout).
        `progress` shows a bar over the items.
        """
        from tqdm.auto import tqdm

        from fewshot.encoders.inference import MAX_BATCH, cpu_batch_size, inference_form
        from fewshot.progress import show_progress

        x = self._check(x)  # once, not per batch
        device = next(self.parameters(), torch.empty(0)).device
        was_training = self.training
        # Convolutions run about 1.5x faster in channels-last layout (measured on CPU for
        # Conv-4); the layout is restored afterwards so that training numerics do not change.
        channels_last = x.ndim == 4 and any(p.ndim == 4 for p in self.parameters())
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.eval()
        try:
            model = inference_form(self)
            if channels_last:
                model.to(memory_format=torch.channels_last)
            if batch_size is None:
                on_cpu = device.type == "cpu"
                sample = x[:1].to(device).contiguous(memory_format=layout)
                batch_size = cpu_batch_size(model, sample) if on_cpu else MAX_BATCH
            chunks = []
            with tqdm(
                total=x.shape[0], desc="embed", unit="img", disable=not show_progress(progress), leave=False
            ) as bar:
                for i in range(0, x.shape[0], batch_size or 1):
                    batch = x[i : i + batch_size].to(device).contiguous(memory_format=layout)
                    chunks.append(model(batch).float().cpu())
                    bar.update(batch.shape[0])
        finally:
            if channels_last:
                self.to(memory_format=torch.contiguous_format)
            self.train(was_training)
        return torch.cat(chunks)

    def config(self) -> dict:
        """JSON-able constructor arguments, stored in checkpoints to rebuild the encoder."""
        return {}


@ENCODERS.register("identity")
class IdentityEncoder(Encoder):
    """For precomputed features: ``(n, d)`` -> ``(n, d)`` unchanged (flattened)."""

    sized_by_data = {"embed_dim": "features"}
    has_weights = False

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).float()

    def config(self) -> dict:
        return {"embed_dim": self.embed_dim}
