"""Linear probe: multinomial logistic regression (scikit-learn) on frozen embeddings.

The regularisation strength ``C`` is chosen on the support set only: stratified
cross-validation over ``cs`` when every class has at least two support items, otherwise
(1-shot) the fixed ``default_c``. Query items are never seen by ``fit``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fewshot.encoders.base import Encoder
from fewshot.learners import LEARNERS
from fewshot.learners.base import EMBEDDING, FewShotLearner

DEFAULT_CS = (0.01, 0.1, 1.0, 10.0, 100.0)


def _fit_logistic(features: np.ndarray, labels: np.ndarray, c: float, max_iter: int):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # 1-shot support sets have as many classes as items, which sklearn takes for regression
        warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
        return model.fit(features, labels)


def choose_c(
    features: np.ndarray, labels: np.ndarray, cs: Sequence[float], default_c: float, folds: int, max_iter: int
) -> float:
    """The ``C`` of ``cs`` with the best stratified cross-validated accuracy on ``features`` ``(n, d)``.

    Ties go to the smaller ``C`` (stronger regularisation). With fewer than two items in some
    class, cross-validation is impossible and ``default_c`` is returned.
    """
    counts = np.bincount(labels)
    n_splits = min(folds, int(counts[counts > 0].min()))
    if n_splits < 2 or len(cs) == 1:
        return float(default_c if len(cs) != 1 else cs[0])
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=0)
    scores = np.zeros(len(cs))
    for train, test in splitter.split(features, labels):
        for i, c in enumerate(cs):
            model = _fit_logistic(features[train], labels[train], c, max_iter)
            scores[i] += (model.predict(features[test]) == labels[test]).mean()
    return float(cs[int(np.argmax(scores))])


@LEARNERS.register("linear-probe")
class LinearProbe(FewShotLearner):
    """Logistic regression on frozen (optionally L2-normalised) embeddings.

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings; never trained here.
        cs: candidate inverse regularisation strengths, chosen by cross-validation on the
            support set.
        default_c: ``C`` used when the support set is too small to cross-validate (1-shot).
        normalize: L2-normalise embeddings first (as CLIP's linear probes do).
        folds: at most this many cross-validation folds.
        max_iter: L-BFGS iterations.
    """

    compare_rank = 2

    kind = EMBEDDING

    def __init__(
        self,
        encoder: Encoder,
        cs: Sequence[float] = DEFAULT_CS,
        default_c: float = 10.0,
        normalize: bool = True,
        folds: int = 5,
        max_iter: int = 1000,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.cs = [float(c) for c in cs]
        self.default_c = float(default_c)
        self.normalize = normalize
        self.folds = folds
        self.max_iter = max_iter
        self.weight_: torch.Tensor | None = None
        self.bias_: torch.Tensor | None = None
        self.c_: float | None = None

    def _features(self, z: torch.Tensor) -> torch.Tensor:
        z = z.float()
        return F.normalize(z, dim=-1) if self.normalize else z

    def _fit_embeddings(self, support_z: torch.Tensor, support_y: torch.Tensor) -> LinearProbe:
        """Fit on already-embedded support items ``(n, d)`` with labels ``(n,)`` in ``0..N-1``."""
        from threadpoolctl import threadpool_limits

        features = self._features(support_z).cpu().numpy().astype(np.float64)
        labels = support_y.cpu().numpy().astype(np.int64)
        n_classes = int(labels.max()) + 1
        # One BLAS thread: support sets are small, and threads cost 30x more than they save here.
        with threadpool_limits(1):
            self.c_ = choose_c(features, labels, self.cs, self.default_c, self.folds, self.max_iter)
            model = _fit_logistic(features, labels, self.c_, self.max_iter)
        weight = np.zeros((n_classes, features.shape[1]))
        bias = np.zeros(n_classes)
        if model.coef_.shape[0] == 1:  # scikit-learn keeps one row for two classes
            weight[model.classes_[1]], bias[model.classes_[1]] = model.coef_[0], model.intercept_[0]
        else:
            weight[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
        device = support_z.device
        self.weight_ = torch.as_tensor(weight, dtype=torch.float32, device=device)
        self.bias_ = torch.as_tensor(bias, dtype=torch.float32, device=device)
        return self

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, N)`` of already-embedded queries ``(M, d)``."""
        self._check_fitted("weight_")
        return self._features(query_z) @ self.weight_.T + self.bias_
