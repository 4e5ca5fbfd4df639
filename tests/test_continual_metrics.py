"""The continual metrics against values worked out by hand from small accuracy matrices."""

from __future__ import annotations

import pytest

from fewshot.continual import metrics
from fewshot.errors import FewshotError

# rows: after training experience i; columns: tested on experience j
R = [
    [0.9, 0.1, 0.2],
    [0.6, 0.8, 0.3],
    [0.5, 0.7, 0.95],
]
B = [0.1, 0.2, 0.25]


def test_average_accuracy_is_the_mean_over_the_experiences_seen_so_far():
    assert metrics.average_accuracy(R) == pytest.approx((0.5 + 0.7 + 0.95) / 3)
    assert metrics.average_accuracy(R, after=0) == pytest.approx(0.9)
    assert metrics.average_accuracy(R, after=1) == pytest.approx((0.6 + 0.8) / 2)


def test_forgetting_is_the_drop_from_the_best_earlier_accuracy():
    # task 0: best 0.9 (after 0), final 0.5 -> 0.4; task 1: best 0.8, final 0.7 -> 0.1
    assert metrics.average_forgetting(R) == pytest.approx((0.4 + 0.1) / 2)
    # the best need not be on the diagonal: task 0 peaks after step 1 at 0.95
    later_peak = [[0.7, 0.0, 0.0], [0.95, 0.8, 0.0], [0.6, 0.8, 0.9]]
    assert metrics.average_forgetting(later_peak) == pytest.approx(((0.95 - 0.6) + 0.0) / 2)


def test_backward_transfer_compares_the_final_row_with_the_diagonal():
    assert metrics.backward_transfer(R) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    improving = [[0.5, 0.0], [0.7, 0.9]]
    assert metrics.backward_transfer(improving) == pytest.approx(0.2)


def test_forward_transfer_compares_the_accuracy_before_training_with_the_untrained_model():
    # R[0, 1] - b[1] = 0.1 - 0.2; R[1, 2] - b[2] = 0.3 - 0.25
    assert metrics.forward_transfer(R, B) == pytest.approx(((0.1 - 0.2) + (0.3 - 0.25)) / 2)


def test_one_experience_has_no_forgetting_nor_transfer():
    assert metrics.average_forgetting([[0.8]]) == 0.0
    assert metrics.backward_transfer([[0.8]]) == 0.0
    assert metrics.forward_transfer([[0.8]], [0.5]) == 0.0


def test_summary_holds_every_metric():
    s = metrics.summary(R, B)
    assert s["average_accuracy"] == pytest.approx(metrics.average_accuracy(R))
    assert s["average_accuracy_per_step"] == pytest.approx([0.9, 0.7, (0.5 + 0.7 + 0.95) / 3])
    assert "forward_transfer" in s and "forward_transfer" not in metrics.summary(R)


@pytest.mark.parametrize("bad", [[], [[0.1, 0.2]], [[0.1], [0.2]]])
def test_a_matrix_that_is_not_square_is_refused(bad):
    with pytest.raises(FewshotError, match="square"):
        metrics.average_accuracy(bad)


def test_b_of_the_wrong_length_is_refused():
    with pytest.raises(FewshotError, match="one accuracy per experience"):
        metrics.forward_transfer(R, [0.1, 0.2])
