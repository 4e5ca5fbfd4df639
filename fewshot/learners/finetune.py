"""Per-episode fine-tuning baseline (Chen et al., 2019, "A Closer Look at Few-shot Classification").

A new head is trained on the support set only, for a fixed number of full-batch Adam steps;
optionally the encoder's last block trains too (with its own, smaller learning rate). The
head is a linear layer on L2-normalised embeddings, scaled by ``scale`` and initialised with
the normalised class means, so training starts from nearest-centroid and refines it.

With ``train_last_block=False`` the encoder never changes and evaluation caches embeddings.
With ``train_last_block=True`` every ``fit`` starts again from the original encoder weights:
a private copy is adapted, the shared encoder is never modified.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from fewshot.encoders.base import Encoder
from fewshot.learners import LEARNERS
from fewshot.learners.base import ADAPTIVE, EMBEDDING, FewShotLearner
from fewshot.scoring import class_means


@LEARNERS.register("finetune")
class Finetune(FewShotLearner):
    """Train a head (and optionally the last encoder block) on the support set.

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings.
        steps: full-batch optimisation steps per episode.
        lr: the head's Adam learning rate.
        train_last_block: also train the encoder's last block (see `encoder_blocks`).
        block_lr: the last block's learning rate.
        scale: logits = ``scale * normalize(z) @ W.T + b``.
        weight_decay: L2 penalty on the head.
    """

    compare_rank = 3

    def __init__(
        self,
        encoder: Encoder,
        steps: int = 100,
        lr: float = 0.01,
        train_last_block: bool = False,
        block_lr: float = 1e-4,
        scale: float = 10.0,
        weight_decay: float = 1e-3,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.steps = steps
        self.lr = lr
        self.train_last_block = train_last_block
        self.block_lr = block_lr
        self.scale = scale
        self.weight_decay = weight_decay
        self.kind = ADAPTIVE if train_last_block else EMBEDDING  # a private encoder copy adapts per task
        self.weight_: torch.Tensor | None = None
        self.bias_: torch.Tensor | None = None
        self._work: dict[str, Encoder] = {}  # the adapted copy; kept out of state_dict

    def _head_logits(self, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(z.float(), dim=-1) @ weight.T + bias

    def _init_head(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        means = class_means(F.normalize(z.float(), dim=-1), y, int(y.max()) + 1)
        weight = F.normalize(means, dim=-1).detach().clone().requires_grad_(True)
        bias = torch.zeros(weight.shape[0], device=z.device, requires_grad=True)
        return weight, bias

    def _fit_embeddings(self, support_z: torch.Tensor, support_y: torch.Tensor) -> Finetune:
        """Train the head on already-embedded support items ``(N*K, d)``."""
        z = support_z.detach().float()
        with torch.enable_grad():
            weight, bias = self._init_head(z, support_y)
            optimizer = torch.optim.Adam([weight, bias], lr=self.lr, weight_decay=self.weight_decay)
            for _ in range(self.steps):
                loss = F.cross_entropy(self._head_logits(z, weight, bias), support_y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.weight_, self.bias_ = weight.detach(), bias.detach()
        return self

    def batch_logits_embeddings(self, support_z: torch.Tensor, query_z: torch.Tensor) -> torch.Tensor:
        """Many episodes at once: support ``(B, N, K, d)``, queries ``(B, M, d)`` -> ``(B, M, N)``.

        The B heads are trained together on the sum of their episodes' losses; Adam's update
        is elementwise, so each head follows exactly the path it would follow alone.
        """
        b, n, k, d = support_z.shape
        z = F.normalize(support_z.detach().float(), dim=-1)
        labels = torch.arange(n, device=z.device).repeat_interleave(k).repeat(b)
        with torch.enable_grad():
            weight = F.normalize(z.mean(2), dim=-1).clone().requires_grad_(True)  # (B, N, d)
            bias = torch.zeros(b, n, device=z.device, requires_grad=True)
            optimizer = torch.optim.Adam([weight, bias], lr=self.lr, weight_decay=self.weight_decay)
            flat = z.reshape(b, n * k, d)
            for _ in range(self.steps):
                logits = self.scale * flat @ weight.transpose(1, 2) + bias.unsqueeze(1)
                loss = F.cross_entropy(logits.reshape(-1, n), labels, reduction="sum") / (n * k)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        query = F.normalize(query_z.float(), dim=-1)
        return self.scale * query @ weight.detach().transpose(1, 2) + bias.detach().unsqueeze(1)

    def _adapted_encoder(self) -> Encoder:
        """A private copy of the encoder, reset to the original weights."""
        work = self._work.get("encoder")
        if work is None:
            work = copy.deepcopy(self.encoder)
            self._work["encoder"] = work
        work.load_state_dict(self.encoder.state_dict())
        return work

    def _fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Finetune:
        if not self.train_last_block:
            return super()._fit(support_x, support_y)
        from fewshot.transfer.strategies import block_parameters, set_trainable_blocks

        encoder = self._adapted_encoder()
        set_trainable_blocks(encoder, 1)
        encoder.eval()  # BatchNorm keeps its running statistics: K*N items are too few to re-estimate
        block = block_parameters(encoder)[-1]
        with torch.enable_grad():
            with torch.no_grad():
                weight, bias = self._init_head(encoder.encode(support_x), support_y)
            weight.requires_grad_(True)
            bias.requires_grad_(True)
            optimizer = torch.optim.Adam(
                [
                    {"params": [weight, bias], "lr": self.lr, "weight_decay": self.weight_decay},
                    {"params": block, "lr": self.block_lr},
                ]
            )
            for _ in range(self.steps):
                loss = F.cross_entropy(self._head_logits(encoder.encode(support_x), weight, bias), support_y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.weight_, self.bias_ = weight.detach(), bias.detach()
        return self

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, N)`` of already-embedded queries ``(M, d)``."""
        self._check_fitted("weight_")
        return self._head_logits(query_z, self.weight_, self.bias_)

    def logits(self, query_x: torch.Tensor) -> torch.Tensor:
        self._check_fitted("weight_")
        encoder = self._work["encoder"] if self.train_last_block else self.encoder
        return self.logits_embeddings(encoder.encode(query_x))
