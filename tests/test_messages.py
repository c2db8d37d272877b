"""Error messages name the argument of the function that was called."""

import numpy as np
import pytest

from gp_hotdistance import (
    HotDistancePredictor,
    balance_weights,
    face_distance,
    hot_distance_target,
    hot_distance_weights,
)


@pytest.mark.parametrize(
    "counts", [np.zeros((3, 2), np.int64), np.zeros((1, 2)), -np.ones((1, 2), int)]
)
def test_balance_weights_counts_named_counts(counts):
    with pytest.raises((ValueError, TypeError), match=r"^counts must"):
        balance_weights(np.array([[0, 1]]), counts=counts)


def test_hot_distance_weights_counts_named_counts():
    gt = np.array([[0, 1]])
    target = hot_distance_target(gt, (1,), 1.0)
    with pytest.raises(ValueError, match=r"^counts must have shape \(2, 2\)"):
        hot_distance_weights(gt, target, None, (1,), 1.0, counts=np.zeros((4, 2), np.int64))


def test_predictor_counts_named_moving_class_counts():
    predictor = HotDistancePredictor(["a"], scale_factor=1.0, mask_distances=False)
    gt = np.array([[0, 1]])
    target = hot_distance_target(gt, (1,), 1.0)
    with pytest.raises(ValueError, match=r"^moving_class_counts must have shape \(2, 2\)"):
        predictor.process_weight(gt, target, None, (1,), np.zeros((4, 2), np.int64))
    # good counts still move on and are not modified
    counts = np.array([[1, 1], [1, 1]])
    _, moved = predictor.process_weight(gt, target, None, (1,), counts)
    assert counts.tolist() == [[1, 1], [1, 1]]
    assert moved.tolist() == [[2, 2], [2, 2]]


def test_face_distance_refuses_strings_and_objects():
    # labels are bool, integer or float (issue 26); others name the argument
    for labels in (np.array(["a", "a", "b"]), np.array([1, None], dtype=object)):
        with pytest.raises(TypeError, match="^labels must be a bool, integer or float"):
            face_distance(labels)
