"""open_clip's text tower run on token embeddings: the text side of prompt tuning (CoOp, CoCoOp).

A prompt is tokenised as usual ("a photo of a red circle." or "X X X X red circle."); its
token embeddings are computed once, and the positions of the context words are replaced by
learned vectors before the transformer runs. With the context initialised from the
template's own words and left untrained, the text features are exactly those of
`fewshot.zeroshot.prompts.text_prototypes` with that one template (CoOp's zero-step check).

`PromptTower` reads the text tower's modules off the open_clip model (``token_embedding``,
``positional_embedding``, ``transformer``, ``ln_final``, ``text_projection``, ``attn_mask``
and the pooling); it is frozen and owns no weights of its own (nothing is copied).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from fewshot.errors import FewshotError
from fewshot.zeroshot.templates import check_template, fill

PLACEHOLDER = "X"


def text_tower_of(encoder: Any, method: str) -> Any:
    """The open_clip module holding ``encoder``'s text transformer, or a `FewshotError`."""
    model = getattr(encoder, "model", None)
    tower = getattr(model, "text", None)
    tower = tower if tower is not None and hasattr(tower, "token_embedding") else model
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final")
    if tower is None or not all(hasattr(tower, n) for n in needed) or not hasattr(encoder, "tokenizer"):
        raise FewshotError(
            f"{method} tunes prompts inside a CLIP text transformer: it needs --encoder clip "
            f"(an open_clip model), not {type(encoder).__name__}"
        )
    if getattr(tower, "cls_emb", None) is not None:
        raise FewshotError(f"{method}: text towers with a class token (CoCa) are not supported")
    return tower


def split_template(template: str) -> tuple[str, str]:
    """``"a photo of a {}."`` -> ``("a photo of a", ".")``: the context words and what follows the name."""
    check_template(template, "init")
    before, after = template.split("{}")
    return before.strip(), after


class PromptTower:
    """The frozen text tower of a `ClipEncoder`, fed with token embeddings.

    Shapes: `embed` ``(n, L)`` tokens -> ``(n, L, width)``; `forward` ``(n, L, width)`` embeddings
    and their ``(n, L)`` tokens -> ``(n, d)`` L2-normalised text features.
    """

    def __init__(self, encoder: Any, method: str = "prompt tuning") -> None:
        self.encoder = encoder
        self.tower = text_tower_of(encoder, method)
        self.tokenizer = encoder.tokenizer
        self.width = int(self.tower.token_embedding.weight.shape[1])
        self.start = self._text_start()

    @property
    def device(self) -> torch.device:
        return self.tower.token_embedding.weight.device

    def _text_start(self) -> int:
        """Index of the first text token (after the start-of-text token, if the tokenizer adds one)."""
        a, b = self.tokenizer(["a", "b"])
        differs = (a != b).nonzero()
        return int(differs[0]) if differs.numel() else 0

    def word_count(self, text: str) -> int:
        """How many tokens ``text`` takes (no start/end tokens)."""
        tokens = self.tokenizer([text])[0]
        empty = self.tokenizer([""])[0]
        return int((tokens != 0).sum() - (empty != 0).sum())

    def prompts(self, names: Sequence[str], init: str | None, n_ctx: int) -> tuple[torch.Tensor, int]:
        """Tokens ``(C, L)`` of each class's prompt and the context length: the template's words
        before ``{}`` (``init``), else ``n_ctx`` placeholders; the class name and the rest follow."""
        if init is None:
            words, after = " ".join([PLACEHOLDER] * n_ctx), "."
        else:
            words, after = split_template(init)
        length = self.word_count(words) if words else 0
        texts = [fill(f"{words} {{}}{after}" if words else f"{{}}{after}", name) for name in names]
        tokens = self.tokenizer(texts).to(self.device)
        if length + self.start + 2 > tokens.shape[1]:
            raise FewshotError(
                f"a context of {length} tokens leaves no room in a {tokens.shape[1]}-token prompt"
            )
        return tokens, length

    @torch.no_grad()
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``(n, L, width)`` (float32, no gradients)."""
        return self.tower.token_embedding(tokens).float()

    def forward(self, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Text features ``(n, d)`` (unit norm) of prompts given as token embeddings ``(n, L, width)``."""
        from open_clip.transformer import text_global_pool

        tower = self.tower
        with self.encoder._autocast():
            x = embeddings + tower.positional_embedding.to(embeddings.dtype)
            x = tower.transformer(x, attn_mask=getattr(tower, "attn_mask", None))
            x = tower.ln_final(x)
            pool = getattr(tower, "text_pool_type", getattr(tower, "pool_type", "argmax"))
            eos = getattr(tower, "text_eos_id", getattr(tower, "eos_id", None))
            x = text_global_pool(x, tokens, pool, eos_token_id=eos)
            projection = tower.text_projection
            if projection is not None:
                x = projection(x) if isinstance(projection, torch.nn.Module) else x @ projection
        return F.normalize(x.float(), dim=-1)

    __call__ = forward

    def with_context(self, base: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``base`` ``(n, L, width)`` with positions ``start .. start+n_ctx`` replaced by
        ``context`` ``(n, n_ctx, width)`` (gradients flow into ``context``)."""
        n_ctx = context.shape[1]
        return torch.cat([base[:, : self.start], context, base[:, self.start + n_ctx :]], dim=1)
