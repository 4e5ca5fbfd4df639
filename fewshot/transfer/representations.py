"""Representations you can look at: a 2-D map of features coloured by class, and linear
probing per layer (which block carries the information the target needs).

- `feature_map`: t-SNE (van der Maaten and Hinton, JMLR 2008; scikit-learn's) of the
  features after PCA to at most 50 dimensions, or UMAP (McInnes et al. 2018) when
  ``umap-learn`` is installed and asked for.
- `layer_features` + `probe_layers`: every block of the encoder (`encoder_blocks`: the
  ImageNet encoders' ``block_modules``, Conv-4's conv blocks, ...) is hooked in one forward
  pass, its output globally average-pooled to ``(n, C)``, and a logistic regression on
  standardised features is fitted on the training items and tested on held-out ones (Alain
  and Bengio, "Understanding intermediate layers using linear classifier probes", 2016).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from fewshot.errors import FewshotError

MAP_METHODS = ("tsne", "umap")


def feature_map(features: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """``(n, d)`` features -> ``(n, 2)`` map coordinates."""
    from sklearn.decomposition import PCA

    x = np.asarray(features, dtype=np.float64)
    if x.shape[0] < 5:
        raise FewshotError(f"a 2-D map needs at least 5 items, got {x.shape[0]}")
    if x.shape[1] > 50:
        x = PCA(50, random_state=seed).fit_transform(x)
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise FewshotError(
                "--method umap needs umap-learn (pip install umap-learn); tsne needs nothing"
            ) from None
        return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
    if method != "tsne":
        raise FewshotError(f"--method {method!r}: choose one of {', '.join(MAP_METHODS)}")
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (x.shape[0] - 1) // 3)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


@torch.no_grad()
def layer_features(encoder: torch.nn.Module, items: torch.Tensor, batch_size: int = 64) -> list[np.ndarray]:
    """Pooled outputs ``(n, C_b)`` of every block ``b`` of ``encoder`` for ``items`` ``(n, ...)``."""
    from fewshot.encoders.pretrained import pooled
    from fewshot.transfer.strategies import encoder_blocks

    blocks = encoder_blocks(encoder)
    captured: list[list[torch.Tensor]] = [[] for _ in blocks]

    def hook_for(i: int):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            captured[i].append(pooled(out.float()).cpu())

        return hook

    handles = [block.register_forward_hook(hook_for(i)) for i, block in enumerate(blocks)]
    was = encoder.training
    encoder.eval()
    device = next(encoder.parameters(), torch.empty(0)).device
    try:
        for start in range(0, items.shape[0], batch_size):
            encoder(items[start : start + batch_size].to(device))
    finally:
        for handle in handles:
            handle.remove()
        encoder.train(was)
    return [torch.cat(parts).numpy() for parts in captured]


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Test accuracy of a logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(train_x, train_y)
    return float((model.predict(test_x) == test_y).mean())


def probe_layers(encoder, train, test) -> list[dict]:
    """One row per block: ``{"block", "module", "features", "accuracy"}`` (input side first)."""
    from fewshot.transfer.strategies import encoder_blocks

    names = [type(b).__name__ for b in encoder_blocks(encoder)]
    train_f, test_f = layer_features(encoder, train.data), layer_features(encoder, test.data)
    y_train, y_test = train.labels.numpy(), test.labels.numpy()
    return [
        {
            "block": i,
            "module": names[i],
            "features": int(a.shape[1]),
            "accuracy": probe_accuracy(a, y_train, b, y_test),
        }
        for i, (a, b) in enumerate(zip(train_f, test_f, strict=True))
    ]


def _save(fig, path: str | Path) -> str:
    import matplotlib.pyplot as plt

    from fewshot.fileio import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return str(path)


def plot_map(coords: np.ndarray, labels: np.ndarray, class_names: list[str], path, title: str) -> str:
    """The 2-D map as a scatter plot coloured by class (legend for up to 20 classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    cmap = plt.get_cmap("tab20" if len(class_names) > 10 else "tab10")
    for c in range(len(class_names)):
        rows = labels == c
        ax.scatter(
            coords[rows, 0], coords[rows, 1], s=9, color=cmap(c % cmap.N), label=class_names[c], alpha=0.8
        )
    if len(class_names) <= 20:
        ax.legend(fontsize=7, markerscale=2, loc="best", framealpha=0.8)
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_probe(rows: list[dict], path, title: str) -> str:
    """Probe accuracy per block, input side on the left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(rows) + 2), 4))
    x = [r["block"] for r in rows]
    ax.plot(x, [100 * r["accuracy"] for r in rows], "o-")
    ax.set_xticks(x, [f"{r['block']}\n{r['features']}" for r in rows], fontsize=8)
    ax.set(
        xlabel="block (input side first) / pooled features",
        ylabel="linear probe test accuracy (%)",
        title=title,
    )
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
