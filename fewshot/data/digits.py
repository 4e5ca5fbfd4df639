"""The UCI handwritten digits as bundled with scikit-learn, as a named data set."""

from __future__ import annotations

import numpy as np

from fewshot.data.catalog import DATASETS
from fewshot.data.labelled import ArraySet, stratified_pick
from fewshot.errors import DataError

TEST_FRACTION = 0.25  # of each class, seeded: the digits have no official train/test split


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's copy: ``(images (1797, 8, 8) float in 0..16, labels (1797,) int64)``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise DataError(
            "the digits data set needs scikit-learn: pip install scikit-learn (a fewshot dependency)"
        ) from err
    bunch = load_digits()
    return np.asarray(bunch.images, dtype=np.float32), np.asarray(bunch.target, dtype=np.int64)


@DATASETS.register("digits")
class Digits(ArraySet):
    """The UCI optical recognition of handwritten digits (Alpaydin and Kaynak, 1998), the
    copy bundled with scikit-learn (``sklearn.datasets.load_digits``): 1,797 images of 8x8
    pixels (ink 0..16 on a 0 background) in 10 classes, ``"0"`` to ``"9"`` (about 180 each).

    Splits (see `fewshot.data.labelled`):

    - ``items`` (default): a seeded, stratified item split (there is no official one): a
      quarter of every class is ``test`` (450 images), the rest ``train`` (1,347); ``all``;
      ``val`` (a fifth of ``train``, 270) and ``fit`` (1,077) for validation. Use the same ``--seed``
      for training and testing. `fewshot eval` defaults to ``test``: few-shot episodes over
      all 10 digits.
    - ``classes`` or ratios ``"<train>,<val>,<test>"``: class-disjoint, seeded, every image of
      a digit goes with it (``classes`` = 3/2/5 digits).

    Items: float32 ``(n, 1, 28, 28)`` in ``[0, 1]``, upsampled from 8x8 (bilinear) so that
    the Omniglot Conv-4 reads them; ``image_size=8`` gives the original pixels.
    Nothing to download: ``fewshot data info`` says "bundled with scikit-learn".
    """

    name = title = "digits"
    class_names = tuple(str(d) for d in range(10))
    item_split = default_split = "items"
    image_size = 28
    native_size = 8
    pixel_scale = 16.0
    val_fraction = 0.2  # 27 images a digit: enough for 5-shot validation episodes of 15 queries
    downloads = False
    source = "bundled with scikit-learn (sklearn.datasets.load_digits)"

    def arrays(self, data_dir, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images, labels = load_digits_arrays()
        everything = np.ones(labels.shape[0], dtype=bool)
        in_test = stratified_pick(labels, everything, TEST_FRACTION, seed)
        return images, labels, ~in_test
